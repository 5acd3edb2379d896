// MicroCare's load driver (run by hand, not in CI):
//   build/tests/microcare_load [--requests N] [--connections C] [--jobs J] [--only PHASE]
//   build/tests/microcare_load --cds [--requests N] [--connections C]
// With --cds it measures CDS Hooks instead: the ceiling, then appointment-book with prefetch
// (RS384 tokens, then ES384 tokens) and the rate of one signature verification of each kind.
// In one run it measures, on this machine:
//  1. the ceiling: a bare Boost.Beast server that answers 200 and does nothing, measured again
//     beside each phase;
//  2. triggers acknowledged per second by `microcare serve` (durability on: every answer waits
//     for its fsync'd group commit), with C concurrent keep-alive connections;
//  3. end-to-end encounters per second against the in-process fake EHR (read the record,
//     evaluate, write the transaction, check it) and the trigger-to-done latency;
//  4. peak resident memory with J jobs queued.
// --only memory|acks|e2e runs that phase (and the ceiling), e.g. under `perf record`.
// --store-url URL [--replicas N]: phases 2 and 3 also run on that PostgreSQL database (emptied
// before each run: give it a throw-away one, tests/pg/pg-server.sh) with 1, 2, ... N replicas
// (services in this process, each with its own port, one audit trail in the database, the
// connections spread over them), beside the SQLite store, with the database round trips per unit of
// work.
#include <fcntl.h>
#include <libpq-fe.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "../integration/fake_ehr.hpp"
#include "../integration/service_harness.hpp"
#include "../unit/adapter/cds/cds_test_keys.hpp"
#include "adapter/cds/jwks.hpp"
#include "adapter/cds/jwt_verifier.hpp"
#include "adapter/client/jwt.hpp"
#include "adapter/service/service.hpp"
#include "adapter/store/job_store.hpp"
#include "adapter/store/pg_job_store.hpp"
#include "adapter/store/sqlite_job_store.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace microcare;

namespace {

struct Figures {
    double per_second = 0;
    double p50_ms = 0;
    double p99_ms = 0;
    std::size_t ok = 0;
    std::size_t failed = 0;
    double cpu_us = 0;  // CPU of the whole process (server and driver) per request answered
};

double Percentile(std::vector<double>& v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

// CPU time of the whole process so far (every thread).
double CpuSeconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

// CPU seconds so far of each thread of this process, by thread id, with its name.
std::map<std::string, std::pair<std::string, double>> ThreadCpu() {
    std::map<std::string, std::pair<std::string, double>> threads;
    const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
        std::ifstream comm(task.path() / "comm"), stat(task.path() / "stat");
        std::string name, line;
        std::getline(comm, name);
        std::getline(stat, line);
        // utime and stime are the 14th and 15th fields; the name (2nd) may hold spaces.
        std::istringstream fields(line.substr(line.rfind(')') + 2));
        std::string field;
        double ticks = 0;
        for (int i = 3; i <= 15 && fields >> field; ++i) {
            if (i >= 14) ticks += std::stod(field);
        }
        threads[task.path().filename().string()] = {name, ticks / tick};
    }
    return threads;
}

// Where the CPU went between two ThreadCpu() readings, per unit of work, by thread name:
// MicroCare's I/O threads, its store and audit writers, the fake EHR, and the rest (the
// driver, the blocking pool). Returns MicroCare's part (its named threads) per unit.
double PrintCpuByThread(const std::map<std::string, std::pair<std::string, double>>& before,
                        const std::map<std::string, std::pair<std::string, double>>& after,
                        std::size_t units, const char* unit) {
    std::map<std::string, double> by_name;
    for (const auto& [tid, named] : after) {
        auto was = before.find(tid);
        const double spent = named.second - (was == before.end() ? 0 : was->second.second);
        const bool ours = named.first.starts_with("microcare-") || named.first == "fake-ehr";
        by_name[ours ? named.first : "driver and the rest"] += spent;
    }
    std::string line;
    for (const auto& [name, seconds] : by_name) {
        char part[96];
        std::snprintf(part, sizeof part, "%s%s %.0f us", line.empty() ? "" : ", ", name.c_str(),
                      1e6 * seconds / static_cast<double>(std::max<std::size_t>(units, 1)));
        line += part;
    }
    std::printf("  CPU per %s by thread: %s\n", unit, line.c_str());
    double microcare = 0;
    for (const auto& [name, seconds] : by_name) {
        if (name.starts_with("microcare-")) microcare += seconds;
    }
    return microcare / static_cast<double>(std::max<std::size_t>(units, 1));
}

// The disk's own pace: seconds per 4 KiB append made durable with fdatasync, as a store commit
// or an audit record is, in `dir`.
double SyncSeconds(const std::filesystem::path& dir) {
    const std::string path = (dir / "sync-probe").string();
    const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_APPEND, 0600);
    if (fd < 0) return 0;
    const std::string block(4096, 'x');
    constexpr int kSyncs = 200;
    const auto start = Clock::now();
    for (int i = 0; i < kSyncs; ++i) {
        if (::write(fd, block.data(), block.size()) < 0 || ::fdatasync(fd) != 0) break;
    }
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count() / kSyncs;
    ::close(fd);
    std::filesystem::remove(path);
    return seconds;
}

// How many commits (each an fsync) the stores made per unit of work, how many writes each
// carried (group commit), and for PostgreSQL the database round trips per unit (`round_trips`:
// each store's count before the run).
void PrintStoreCommits(const std::vector<adapter::JobStore*>& stores, std::size_t units,
                       const char* unit, const std::vector<std::uint64_t>& round_trips = {}) {
    std::uint64_t commits = 0, writes = 0, trips = 0;
    bool pg = false;
    for (std::size_t i = 0; i < stores.size(); ++i) {
        if (auto* sqlite = dynamic_cast<adapter::SqliteJobStore*>(stores[i])) {
            commits += sqlite->stats().commits;
            writes += sqlite->stats().write_tasks;
        } else if (auto* postgres = dynamic_cast<adapter::PgJobStore*>(stores[i])) {
            pg = true;
            commits += postgres->stats().commits;
            writes += postgres->stats().write_tasks;
            trips += postgres->RoundTrips() - (i < round_trips.size() ? round_trips[i] : 0);
        }
    }
    const double n = static_cast<double>(std::max<std::size_t>(units, 1));
    std::printf(
        "  store commits per %-27s %9.2f   (%.1f writes a commit)\n", unit,
        static_cast<double>(commits) / n,
        static_cast<double>(writes) / static_cast<double>(std::max<std::uint64_t>(commits, 1)));
    if (pg) {
        std::printf("  database round trips per %-20s %9.2f\n", unit,
                    static_cast<double>(trips) / n);
    }
}

std::vector<std::uint64_t> RoundTrips(const std::vector<adapter::JobStore*>& stores) {
    std::vector<std::uint64_t> trips;
    for (adapter::JobStore* store : stores) {
        auto* postgres = dynamic_cast<adapter::PgJobStore*>(store);
        trips.push_back(postgres ? postgres->RoundTrips() : 0);
    }
    return trips;
}

// Where a phase keeps its jobs: the SQLite file of its directory, or `replicas` services on one
// PostgreSQL database.
struct StoreChoice {
    std::string url;  // empty: SQLite
    int replicas = 1;
    std::string Name() const {
        return url.empty() ? "SQLite"
                           : "PostgreSQL, " + std::to_string(replicas) + " replica" +
                                 (replicas > 1 ? "s" : "");
    }
};

// Runs `sql` on a connection of its own: the first value of its last result ("" when none), or
// nothing when the database cannot be reached.
std::optional<std::string> PgOnce(const std::string& url, const char* sql) {
    PGconn* db = PQconnectdb(url.c_str());
    std::optional<std::string> value;
    if (PQstatus(db) == CONNECTION_OK) {
        PGresult* result = PQexec(db, sql);
        value = PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) > 0
                    ? PQgetvalue(result, 0, 0)
                    : "";
        PQclear(result);
    } else {
        std::fprintf(stderr, "load driver: cannot reach %s\n", PQerrorMessage(db));
    }
    PQfinish(db);
    return value;
}

// Empties the database: each run starts on a fresh schema, migrated by the first store.
bool ResetDatabase(const std::string& url) {
    return PgOnce(url,
                  "SET client_min_messages TO warning; DROP SCHEMA IF EXISTS public CASCADE; "
                  "CREATE SCHEMA public")
        .has_value();
}

// The database's committed transactions so far, every connection's (pg_stat_database; a
// session's count is flushed when it ends, so read it after the services stopped).
double DatabaseCommits(const std::string& url) {
    return std::atof(PgOnce(url,
                            "SELECT xact_commit FROM pg_stat_database "
                            "WHERE datname = current_database()")
                         .value_or("0")
                         .c_str());
}

// After a phase on PostgreSQL, its services stopped: every commit of the phase, the trail's
// and every replica's store's (each a WAL flush, an fsync on a durable server), per unit and
// per second, and the trail's records per unit.
void PrintDatabaseCommits(const std::string& url, double commits_before, std::size_t units,
                          double seconds, const char* unit) {
    const double commits = DatabaseCommits(url) - commits_before;
    const double records =
        std::atof(PgOnce(url, "SELECT count(*) FROM audit_records").value_or("0").c_str());
    const double n = static_cast<double>(std::max<std::size_t>(units, 1));
    std::printf(
        "  database commits per %-24s %9.2f   (%.0f /s, each a WAL flush; the trail's "
        "and the store's)\n",
        unit, commits / n, seconds > 0 ? commits / seconds : 0.0);
    std::printf("  trail records per %-27s %9.2f\n", unit, records / n);
}

// The services of a phase, started: one on SQLite, or `replicas` on the database.
std::vector<std::unique_ptr<adapter::Service>> StartServices(const adapter::ServiceConfig& base,
                                                             const StoreChoice& choice,
                                                             const std::filesystem::path& dir) {
    std::vector<std::unique_ptr<adapter::Service>> services;
    if (!choice.url.empty() && !ResetDatabase(choice.url)) return services;
    for (int r = 0; r < choice.replicas; ++r) {
        adapter::ServiceConfig config = base;
        const auto own = dir / ("replica-" + std::to_string(r));
        std::filesystem::create_directories(own);
        if (choice.url.empty()) {
            config.store.path = (own / "microcare.db").string();
            config.audit.path = (own / "audit.log").string();
            config.audit.checkpoint_path = (own / "audit.log.checkpoint").string();
        } else {
            config.store.url = choice.url;  // and so the one trail, in the database
        }
        auto service = adapter::Service::Create(config);
        if (!service) {
            std::fprintf(stderr, "load driver: the service did not start\n");
            return {};
        }
        (*service)->Start();
        services.push_back(std::move(*service));
    }
    return services;
}

std::vector<unsigned short> PortsOf(
    const std::vector<std::unique_ptr<adapter::Service>>& services) {
    std::vector<unsigned short> ports;
    for (const auto& s : services) ports.push_back(s->port());
    return ports;
}

std::vector<adapter::JobStore*> StoresOf(
    const std::vector<std::unique_ptr<adapter::Service>>& services) {
    std::vector<adapter::JobStore*> stores;
    for (const auto& s : services) stores.push_back(&s->store());
    return stores;
}

// C connections, each sending its share of N requests back to back on one keep-alive socket.
// `authorization`: the header of request i (default: the EHR's static token).
// With several ports, connection c goes to ports[c % n]: replicas behind a load balancer.
Figures Drive(const std::vector<unsigned short>& ports, std::size_t requests,
              std::size_t connections, const std::function<std::string(std::size_t)>& body,
              const std::string& target,
              const std::function<std::string(std::size_t)>& authorization = {}) {
    asio::io_context io;
    std::atomic<std::size_t> next{0};
    std::vector<double> latencies;
    std::mutex mutex;
    std::atomic<std::size_t> ok{0}, failed{0};
    auto client = [&](unsigned short port) -> asio::awaitable<void> {
        beast::tcp_stream stream(co_await asio::this_coro::executor);
        co_await stream.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port),
                                      asio::use_awaitable);
        beast::flat_buffer buffer;
        std::vector<double> mine;
        for (std::size_t i = next++; i < requests; i = next++) {
            bhttp::request<bhttp::string_body> req{bhttp::verb::post, target, 11};
            req.set(bhttp::field::host, "127.0.0.1");
            req.set(bhttp::field::content_type, "application/fhir+json");
            req.set(bhttp::field::authorization,
                    authorization ? authorization(i) : std::string("Bearer ") + testing::kToken);
            req.body() = body(i);
            req.prepare_payload();
            const auto start = Clock::now();
            co_await bhttp::async_write(stream, req, asio::use_awaitable);
            bhttp::response<bhttp::string_body> res;
            co_await bhttp::async_read(stream, buffer, res, asio::use_awaitable);
            mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
            (res.result_int() == 200 ? ok : failed)++;
        }
        std::lock_guard lock(mutex);
        latencies.insert(latencies.end(), mine.begin(), mine.end());
    };
    for (std::size_t c = 0; c < connections; ++c) {
        asio::co_spawn(io, client(ports[c % ports.size()]), [&](std::exception_ptr e) {
            if (e) ++failed;
        });
    }
    const auto start = Clock::now();
    const double cpu_before = CpuSeconds();
    std::thread helper([&] { io.run(); });
    io.run();
    helper.join();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    Figures f;
    f.cpu_us =
        1e6 * (CpuSeconds() - cpu_before) / static_cast<double>(std::max<std::size_t>(ok, 1));
    f.ok = ok;
    f.failed = failed;
    f.per_second = static_cast<double>(ok) / seconds;
    f.p50_ms = Percentile(latencies, 0.50);
    f.p99_ms = Percentile(latencies, 0.99);
    return f;
}

// The ceiling: Beast answering 200 with nothing behind it, on 2 threads like MicroCare.
class BareServer {
public:
    BareServer() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        asio::co_spawn(io_, Accept(), asio::detached);
        for (int i = 0; i < 2; ++i) threads_.emplace_back([this] { io_.run(); });
    }
    ~BareServer() {
        io_.stop();
        for (auto& t : threads_) t.join();
    }
    unsigned short port() const { return acceptor_.local_endpoint().port(); }

private:
    asio::awaitable<void> Accept() {
        for (;;) {
            tcp::socket socket =
                co_await acceptor_.async_accept(asio::make_strand(io_), asio::use_awaitable);
            asio::co_spawn(socket.get_executor(), Session(std::move(socket)), asio::detached);
        }
    }
    static asio::awaitable<void> Session(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        for (;;) {
            bhttp::request<bhttp::string_body> req;
            auto [ec, n] = co_await bhttp::async_read(stream, buffer, req,
                                                      asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;
            bhttp::response<bhttp::string_body> res{bhttp::status::ok, 11};
            res.keep_alive(req.keep_alive());
            res.prepare_payload();
            co_await bhttp::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
        }
    }
    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::vector<std::thread> threads_;
};

// What the aim leaves per unit of work: every core of this machine shared by `aim` x the
// ceiling's rate, against the CPU the whole process (MicroCare, the driver, the fake EHR) spent
// on each one. Above 1, the aim cannot be met at this CPU cost however the waiting is arranged.
void PrintCpuBudget(double aim, const Figures& ceiling, double spent_us, const char* unit) {
    const double budget_us =
        1e6 * std::thread::hardware_concurrency() / std::max(aim * ceiling.per_second, 1e-9);
    const std::string label = std::string("  CPU per ") + unit + " the aim allows";
    std::printf("%-46s %9.0f us   (spent %.0f us: %.2f x that)\n", label.c_str(), budget_us,
                spent_us, spent_us / budget_us);
}

long PeakRssMb() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss / 1024;
}

void Print(const char* what, const Figures& f) {
    std::printf(
        "%-46s %9.0f /s   p50 %7.2f ms   p99 %7.2f ms   %5.0f us CPU each   (%zu ok, %zu "
        "failed)\n",
        what, f.per_second, f.p50_ms, f.p99_ms, f.cpu_us, f.ok, f.failed);
}

// The ceiling beside the phase it divides: this machine's speed drifts by a fifth over a minute
// (other tenants), so one ceiling at the start skews the later phases' ratios. The median of
// three short runs, measured just before the phase, keeps one slow or fast run from setting it.
Figures Ceiling(std::size_t requests, std::size_t connections,
                const std::function<std::string(std::size_t)>& body, const std::string& target) {
    std::vector<Figures> runs;
    for (int run = 0; run < 3; ++run) {
        BareServer bare;
        runs.push_back(Drive({bare.port()}, requests, connections, body, target));
    }
    std::sort(runs.begin(), runs.end(),
              [](const Figures& a, const Figures& b) { return a.per_second < b.per_second; });
    std::printf("ceiling: bare Beast server answering 200 (median of 3: %.0f, %.0f, %.0f /s)\n",
                runs[0].per_second, runs[1].per_second, runs[2].per_second);
    Print("  ceiling beside this phase", runs[1]);
    return runs[1];
}

// Verifications of one signature per second, on one thread: what one core can check.
double VerificationsPerSecond(const testing::TestKey& key) {
    auto keys = adapter::ParseJwks(testing::JwksOf({&key}));
    const std::string token = testing::SignedJwt(key, R"({"a":1})");
    const std::size_t dot = token.rfind('.');
    const std::string signature = *adapter::Base64UrlDecode(token.substr(dot + 1));
    const auto start = Clock::now();
    std::size_t n = 0;
    for (; Clock::now() - start < std::chrono::seconds(2); ++n) {
        if (!adapter::VerifySha384(keys->at(0).key.get(), token.substr(0, dot), signature)) {
            return 0;
        }
    }
    return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
}

// appointment-book with prefetch: a small record (a current isotretinoin prescription, a
// condition, an HbA1c) and one proposed microneedling appointment; every call a fresh JWT.
int CdsLoad(std::size_t requests, std::size_t connections) {
    constexpr const char* kIssuer = "https://ehr.example/cds-client";
    constexpr const char* kAudience =
        "https://microcare.test/cds-services/microcare-appointment-book";
    const testing::TestKey rsa = testing::MakeRsaKey("load-rsa");
    const testing::TestKey ec = testing::MakeP384Key("load-ec");
    const std::string body =
        R"({"hookInstance":"load","hook":"appointment-book","context":{"userId":"Practitioner/1","patientId":"pat-load","appointments":[{"resourceType":"Appointment","id":"apt-load","status":"proposed","serviceType":[{"coding":[{"system":"https://microcare.example/CodeSystem/procedure","code":"microneedling"}]}],"start":"2026-11-20T10:00:00+01:00","participant":[{"actor":{"reference":"Patient/pat-load"}}]}]},"prefetch":{"patient":{"resourceType":"Patient","id":"pat-load","birthDate":"1990-04-12"},)"
        R"("conditions":{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Condition","id":"cond-load","subject":{"reference":"Patient/pat-load"},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003","display":"Hypertension"}]}}}]},)"
        R"("medicationRequests":{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"MedicationRequest","id":"mr-load","status":"active","intent":"order","subject":{"reference":"Patient/pat-load"},"authoredOn":"2026-10-01","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"197843","display":"Isotretinoin 10 MG Oral Capsule"}]}}}]},)"
        R"("observations":{"resourceType":"Bundle","type":"searchset","entry":[{"resource":{"resourceType":"Observation","id":"obs-load","status":"final","subject":{"reference":"Patient/pat-load"},"code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},"effectiveDateTime":"2026-09-01","valueQuantity":{"value":5.6,"unit":"%"}}}]},)"
        R"("allergies":{"resourceType":"Bundle","type":"searchset"},"medicationStatements":{"resourceType":"Bundle","type":"searchset"},"medicationAdministrations":{"resourceType":"Bundle","type":"searchset"},"procedures":{"resourceType":"Bundle","type":"searchset"},"immunizations":{"resourceType":"Bundle","type":"searchset"},"encounters":{"resourceType":"Bundle","type":"searchset"}}})";
    const auto tokens = [&](const testing::TestKey& key, const std::string& prefix) {
        // Signed before the run: the EHR's signing cost is not MicroCare's.
        const long long exp = std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count() +
                              280;
        std::vector<std::string> out;
        for (std::size_t i = 0; i < requests; ++i) {
            out.push_back("Bearer " +
                          testing::SignedJwt(key, testing::CdsClaims(kIssuer, kAudience, exp,
                                                                     prefix + std::to_string(i))));
        }
        return out;
    };
    std::printf(
        "load driver (CDS Hooks): %zu requests over %zu connections; 2 server threads; "
        "%u cores\n\n",
        requests, connections, std::thread::hardware_concurrency());
    const auto dir = testing::FreshDirectory("load-cds");
    const Figures ceiling = Ceiling(
        requests, connections, [&](std::size_t) { return body; },
        "/cds-services/microcare-appointment-book");
    auto config = testing::TestConfig("http://127.0.0.1:9/fhir", dir);
    config.server.max_body_bytes = 1 << 20;
    config.log_level = "error";
    config.cds.enabled = true;
    config.cds.service_base_url = "https://microcare.test";
    config.cds.issuers.push_back(adapter::CdsIssuer{kIssuer, {}, testing::JwksOf({&rsa, &ec}), {}});
    auto service = adapter::Service::Create(config);
    if (!service) return 1;
    (*service)->Start();
    for (const testing::TestKey* key : {&rsa, &ec}) {
        const auto signed_tokens = tokens(*key, key->alg + "-");
        Figures cds = Drive(
            {(*service)->port()}, requests, connections, [&](std::size_t) { return body; },
            "/cds-services/microcare-appointment-book",
            [&](std::size_t i) { return signed_tokens[i]; });
        Print(("appointment-book with prefetch, " + key->alg).c_str(), cds);
        std::printf("%-46s %9.2f\n", "  ratio to the ceiling", cds.per_second / ceiling.per_second);
    }
    (*service)->Stop();
    std::printf("\n%-46s %9.0f /s (one core)\n", "RS384 verifications",
                VerificationsPerSecond(rsa));
    std::printf("%-46s %9.0f /s (one core)\n", "ES384 (P-384) verifications",
                VerificationsPerSecond(ec));
    std::filesystem::remove_all(dir);
    return 0;
}

}  // namespace

// What a phase sends: the $process-message of request i.
using Messages = std::function<std::function<std::string(std::size_t)>(const std::string&)>;

// 2. Acknowledgements, durability on. The worker is held off (its one job waits on an EHR that
// never answers) so that only the trigger path is measured.
bool Acks(const StoreChoice& choice, const Figures& ceiling, std::size_t requests,
          std::size_t connections, const Messages& message, const std::filesystem::path& dir) {
    testing::FakeEhr silent;
    silent.InjectFault("*", "", testing::Fault::Stall(), 1000000);
    auto config = testing::TestConfig(silent.BaseUrl(), dir / "ack");
    config.ehr.request_timeout = std::chrono::minutes(10);
    config.store.synchronous = true;
    config.server.max_body_bytes = 1 << 20;
    config.worker.concurrency = 1;
    config.worker.backoff_initial = std::chrono::minutes(10);
    config.worker.backoff_max = std::chrono::minutes(10);
    config.log_level = "error";
    const auto where = dir / ("ack-" + std::to_string(choice.url.empty() ? 0 : choice.replicas));
    auto services = StartServices(config, choice, where);
    if (services.empty()) return false;
    const auto stores = StoresOf(services);
    const auto trips = RoundTrips(stores);
    const double commits_before = choice.url.empty() ? 0 : DatabaseCommits(choice.url);
    const auto threads_before = ThreadCpu();
    Figures ack =
        Drive(PortsOf(services), requests, connections, message("ack-"), "/fhir/$process-message");
    Print(("triggers acknowledged, " + choice.Name()).c_str(), ack);
    static_cast<void>(PrintCpuByThread(threads_before, ThreadCpu(), ack.ok, "trigger"));
    PrintStoreCommits(stores, ack.ok, "trigger", trips);
    if (choice.url.empty()) {
        // Each acknowledgement waits for a commit that may have started before it arrived:
        // with C connections, at most about C / (1.5 syncs) a second, whatever the CPU.
        const double sync = SyncSeconds(where);
        std::printf(
            "  fdatasync of 4 KiB here                   %9.2f ms   (bound: %.0f /s with %zu "
            "connections)\n",
            1e3 * sync, sync > 0 ? static_cast<double>(connections) / (1.5 * sync) : 0.0,
            connections);
    }
    for (auto& service : services) service->Stop();
    services.clear();
    if (!choice.url.empty()) {
        PrintDatabaseCommits(choice.url, commits_before, ack.ok,
                             static_cast<double>(ack.ok) / std::max(ack.per_second, 1e-9),
                             "trigger");
    }
    std::printf("%-46s %9.3f   (aim: 0.4)\n", "  ratio to the ceiling",
                ack.per_second / ceiling.per_second);
    PrintCpuBudget(0.4, ceiling, ack.cpu_us, "trigger");
    std::printf("\n");
    return true;
}

// 3. End to end against the fake EHR: one patient per encounter, each with a small record (a
// condition, a current isotretinoin prescription, an HbA1c), so every job writes a CarePlan, a
// DetectedIssue and a Task.
bool EndToEnd(const StoreChoice& choice, const Figures& ceiling, std::size_t requests,
              std::size_t connections, const Messages& message, const std::filesystem::path& dir) {
    testing::FakeEhr ehr;
    const std::size_t encounters = std::min<std::size_t>(requests, 5000);
    for (std::size_t i = 0; i < encounters; ++i) {
        const std::string n = std::to_string(i);
        const std::string patient = "pat-load-" + n;
        ehr.Put(R"({"resourceType":"Patient","id":")" + patient + R"(","birthDate":"1990-04-12"})");
        ehr.Put(
            testing::MicroneedlingEncounter("enc-load-" + n, patient, "2026-11-20T10:00:00+01:00"));
        ehr.Put(
            R"({"resourceType":"Condition","id":"cond-load-)" + n +
            R"(","subject":{"reference":"Patient/)" + patient +
            R"("},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":"38341003","display":"Hypertension"}]}})");
        ehr.Put(
            R"({"resourceType":"MedicationRequest","id":"mr-load-)" + n +
            R"(","status":"active","intent":"order","subject":{"reference":"Patient/)" + patient +
            R"("},"authoredOn":"2026-10-01","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"197843","display":"Isotretinoin 10 MG Oral Capsule"}]}})");
        ehr.Put(
            R"({"resourceType":"Observation","id":"obs-load-)" + n +
            R"(","status":"final","subject":{"reference":"Patient/)" + patient +
            R"("},"code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},"effectiveDateTime":"2026-09-01","valueQuantity":{"value":5.6,"unit":"%"}})");
    }
    auto config = testing::TestConfig(ehr.BaseUrl(), dir / "e2e");
    // 32 workers in all, spread over the replicas.
    config.worker.concurrency = std::max(1, 32 / choice.replicas);
    config.ehr.request_timeout = std::chrono::seconds(30);
    config.log_level = "error";
    auto services = StartServices(
        config, choice, dir / ("e2e-" + std::to_string(choice.url.empty() ? 0 : choice.replicas)));
    if (services.empty()) return false;
    const auto stores = StoresOf(services);
    const auto trips = RoundTrips(stores);
    const double commits_before = choice.url.empty() ? 0 : DatabaseCommits(choice.url);
    const auto start = Clock::now();
    const double cpu_before = CpuSeconds();
    const auto threads_before = ThreadCpu();
    Figures sent = Drive(PortsOf(services), encounters, connections, message("e2e-"),
                         "/fhir/$process-message");
    adapter::JobStore& store = *stores.front();  // one database: each store sees every job
    testing::WaitFor(
        [&] {
            auto done = store.CountByState(adapter::JobState::kDone);
            auto dead = store.CountByState(adapter::JobState::kDead);
            return done && dead && *done + *dead >= sent.ok;
        },
        std::chrono::minutes(10));
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double cpu = CpuSeconds() - cpu_before;
    const auto threads_after = ThreadCpu();
    adapter::JobFilter filter;
    filter.limit = encounters;
    auto all = store.List(filter);
    std::vector<double> latencies;
    std::size_t done = 0;
    for (const adapter::Job& job : all ? *all : std::vector<adapter::Job>{}) {
        if (job.state != adapter::JobState::kDone) continue;
        ++done;
        latencies.push_back(static_cast<double>((job.updated_at - job.created_at).count()));
    }
    Figures e2e;
    e2e.ok = done;
    e2e.failed = sent.ok - done;
    e2e.per_second = static_cast<double>(done) / seconds;
    e2e.p50_ms = Percentile(latencies, 0.50);
    e2e.p99_ms = Percentile(latencies, 0.99);
    e2e.cpu_us = 1e6 * cpu / static_cast<double>(std::max<std::size_t>(done, 1));
    Print(("end to end, " + choice.Name()).c_str(), e2e);
    std::printf("%-46s %9.3f   (aim: 0.05)\n", "  ratio to the ceiling",
                e2e.per_second / ceiling.per_second);
    PrintCpuBudget(0.05, ceiling, e2e.cpu_us, "encounter");
    // What MicroCare alone could do on this machine were the EHR free: its own CPU per
    // encounter over every core.
    const double own = PrintCpuByThread(threads_before, threads_after, done, "encounter");
    const double alone = own > 0 ? std::thread::hardware_concurrency() / own : 0;
    std::printf("  MicroCare alone, were the EHR free         %9.0f /s   (%.3f x the ceiling)\n",
                alone, alone / ceiling.per_second);
    std::printf("%-46s %9zu\n", "  CarePlans on the fake EHR", ehr.Count("CarePlan"));
    PrintStoreCommits(stores, done, "encounter", trips);
    const double requests_each =
        static_cast<double>(ehr.Requests().size()) / static_cast<double>(done);
    for (auto& service : services) service->Stop();
    services.clear();
    if (!choice.url.empty()) {
        PrintDatabaseCommits(choice.url, commits_before, done, seconds, "encounter");
    }
    std::printf("%-46s %9.2f\n\n", "  EHR requests per encounter", requests_each);
    ehr.Stop();
    return true;
}

int main(int argc, char** argv) {
    std::size_t requests = 20000, connections = 64, jobs = 10000;
    std::string only;
    std::string store_url;
    int replicas = 1;
    bool cds = false;
    for (int i = 1; i < argc; ++i) {
        if (std::string(argv[i]) == "--cds") {
            cds = true;
            continue;
        }
        if (i + 1 >= argc) break;
        std::string name = argv[i];
        if (name == "--only") {
            only = argv[++i];
            continue;
        }
        if (name == "--store-url") {
            store_url = argv[++i];
            continue;
        }
        std::size_t value = std::stoul(argv[++i]);
        if (name == "--requests") requests = value;
        if (name == "--connections") connections = value;
        if (name == "--jobs") jobs = value;
        if (name == "--replicas") replicas = static_cast<int>(value);
    }
    if (cds) return CdsLoad(requests, connections);
    std::printf("load driver: %zu requests over %zu connections; 2 server threads; %u cores\n\n",
                requests, connections, std::thread::hardware_concurrency());
    const auto message = [](const std::string& prefix) {
        return [prefix](std::size_t i) {
            return testing::MessageBundle(prefix + std::to_string(i), "h" + std::to_string(i),
                                          "Encounter/enc-load-" + std::to_string(i));
        };
    };

    const auto dir = testing::FreshDirectory("load");
    // Memory first, so that the peak is this phase's: J jobs queued (the EHR unreachable, so
    // they stay queued).
    const auto runs = [&only](std::string_view phase) { return only.empty() || only == phase; };
    if (runs("memory")) {
        auto config = testing::TestConfig("http://127.0.0.1:9/fhir", dir / "mem");
        std::filesystem::create_directories(dir / "mem");
        config.store.path = (dir / "mem" / "microcare.db").string();
        config.worker.backoff_initial = std::chrono::minutes(10);
        config.worker.backoff_max = std::chrono::minutes(10);
        config.log_level = "error";
        auto service = adapter::Service::Create(config);
        if (!service) return 1;
        (*service)->Start();
        Figures queued = Drive({(*service)->port()}, jobs, connections, message("mem-"),
                               "/fhir/$process-message");
        auto count = (*service)->store().CountByState(adapter::JobState::kQueued);
        std::printf("%-46s %9zu\n", "jobs journaled", queued.ok);
        std::printf("%-46s %9zu\n", "  of which queued", count ? *count : 0);
        std::printf("%-46s %9ld MB (whole process: the driver and its servers)\n",
                    "peak resident memory", PeakRssMb());
        (*service)->Stop();
    }
    std::printf("\n");

    const auto ceiling = [&] {
        return Ceiling(requests, connections, message("ceiling-"), "/fhir/$process-message");
    };
    std::vector<StoreChoice> choices{StoreChoice{}};
    for (int r = 1; !store_url.empty() && r <= replicas; ++r) choices.push_back({store_url, r});
    for (const StoreChoice& choice : choices) {
        if (runs("acks") && !Acks(choice, ceiling(), requests, connections, message, dir)) return 1;
    }
    for (const StoreChoice& choice : choices) {
        if (runs("e2e") && !EndToEnd(choice, ceiling(), requests, connections, message, dir))
            return 1;
    }

    std::filesystem::remove_all(dir);
    return 0;
}
