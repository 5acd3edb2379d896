#include "adapter/service/service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "adapter/admin_audit.hpp"
#include "adapter/async_util.hpp"
#include "adapter/audit/audit_log.hpp"
#include "adapter/cds/cds_routes.hpp"
#include "adapter/client/ehr_health.hpp"
#include "adapter/client/http_client.hpp"
#include "adapter/client/observed_ehr.hpp"
#include "adapter/configured_trail.hpp"
#include "adapter/log.hpp"
#include "adapter/metrics.hpp"
#include "adapter/poll/ehr_poller.hpp"
#include "adapter/rule_pack_file.hpp"
#include "adapter/server/fhir_endpoint.hpp"
#include "adapter/server/http_server.hpp"
#include "adapter/service/ehr_connection.hpp"
#include "adapter/service/reloader.hpp"
#include "adapter/service/rule_pack_in_force.hpp"
#include "adapter/service/trail_notes.hpp"
#include "adapter/service/worker.hpp"
#include "adapter/store/job_store.hpp"
#include "adapter/thread_name.hpp"
#include "adapter/tls_contexts.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

}  // namespace

struct Service::Impl {
    explicit Impl(WallClock wall_clock) : now(std::move(wall_clock)), ehr_health(now) {}
    // The store outlives the worker it wakes: no wake-up may reach a worker being destroyed.
    ~Impl() {
        if (store) store->OnWorkAvailable(nullptr);
    }

    ServiceConfig config;
    WallClock now;
    EhrHealth ehr_health;
    asio::io_context io;
    asio::thread_pool blocking{2};
    Metrics metrics;
    std::unique_ptr<JobStore> store;
    std::unique_ptr<AuditLog> audit;
    std::unique_ptr<RulePackInForce> rules;
    std::unique_ptr<Reloader> reloader;
    std::unique_ptr<ssl::context> server_tls;
    std::unique_ptr<EhrConnection> ehr;
    std::unique_ptr<ObservedEhr> observed_ehr;  // what the worker talks to: ehr, watched
    std::unique_ptr<Worker> worker;
    PollHealth poll_health;
    std::unique_ptr<EhrPoller> poller;  // with a `poll` section only
    // Trigger records and admin notes, committed in the store, on their way to the trail.
    std::unique_ptr<TrailNotes> trail_notes;
    std::unique_ptr<FhirEndpoint> endpoint;
    std::unique_ptr<ssl::context> cds_tls;  // CDS Hooks: to fhirServers and JWKS URLs
    std::unique_ptr<HttpClient> cds_http;
    std::unique_ptr<CdsRoutes> cds;
    std::unique_ptr<HttpServer> server;
    unsigned short port = 0;
    std::vector<std::thread> threads;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::optional<asio::signal_set> stop_signals;    // SIGTERM, SIGINT
    std::optional<asio::signal_set> reload_signals;  // SIGHUP
    std::atomic<bool> ready{false};
    std::mutex mutex;
    std::condition_variable stopped_cv;
    bool stopped = false;   // Stop() has begun
    bool finished = false;  // ... and has ended

    // Every reload, whatever asked for it, goes through here to be counted.
    ReloadReport Reload(std::string_view trigger) {
        ReloadReport report = reloader->Reload(trigger);
        ++(report.applied() ? metrics.reloads_applied : metrics.reloads_refused);
        return report;
    }
};

Service::Service(WallClock now) : impl_(std::make_unique<Impl>(std::move(now))) {}

Service::~Service() { Stop(); }

Result<std::unique_ptr<Service>> Service::Create(const ServiceConfig& config,
                                                 const std::string& config_path,
                                                 ServiceSeams seams) {
    std::unique_ptr<Service> service(new Service(std::move(seams.now)));
    Impl& s = *service->impl_;
    s.config = config;
    // Replicas on one database write one trail there, however the configuration was made: the
    // loader says so in audit.database, a configuration built in code need not.
    if (!config.store.IsFile()) s.config.audit.database = config.store.url;
    if (auto level = ParseLogLevel(config.log_level)) Log::SetLevel(*level);

    fhir::IssueList issues;
    const std::string rules_path = RulePackPath(config.rules_path);
    auto pack = LoadRulePackFile(rules_path, issues);
    if (!pack) {
        for (const fhir::Issue& issue : issues) {
            Log::Error("the rule pack is refused",
                       {{"path", issue.path}, {"problem", issue.message}});
        }
        return Error::kInvalidConfig;
    }
    s.rules =
        std::make_unique<RulePackInForce>(std::make_shared<const rules::RuleSet>(std::move(*pack)));
    const rules::PackIdentity loaded = s.rules->Snapshot()->Identity();
    Log::Info("rule pack loaded",
              {{"pack", loaded.id}, {"version", loaded.version}, {"sha256", loaded.sha256}});

    // The data directory is made on first start (none for a PostgreSQL store: the trail is in
    // its database too).
    if (config.store.IsFile()) {
        for (const std::string& file : {config.store.path, config.audit.path}) {
            std::error_code ignored;
            const auto parent = std::filesystem::path(file).parent_path();
            if (!parent.empty()) std::filesystem::create_directories(parent, ignored);
        }
    }
    StoreOptions store_options;
    store_options.synchronous_full = config.store.synchronous;
    store_options.now = s.now;
    // Opening also brings the schema up to date (`microcare store migrate` does it alone).
    auto store = JobStore::Open(config.store.Location(), store_options);
    if (!store) {
        Log::Error("cannot open the store",
                   {{"store", RedactStoreLocation(config.store.Location())}});
        return store.error();
    }
    s.store = std::move(*store);
    AuditLog::Options audit_options;
    audit_options.open_file = std::move(seams.audit_file);
    auto audit = OpenConfiguredTrail(s.config.audit, std::move(audit_options));
    if (!audit) {
        Log::Error("cannot open the audit log (damaged, or not writable)",
                   {{"path", s.config.audit.database.empty() ? s.config.audit.path : "database"}});
        return audit.error();
    }
    s.audit = std::move(*audit);
    // What admins did while the service was stopped and the command line could not record.
    if (auto written = WriteAdminNotes(*s.store, *s.audit); !written) {
        Log::Error("cannot write admin records into the audit trail",
                   {{"error", written.error().message()}});
    }

    // Every failure names its setting and file (tls_contexts.hpp), as `config check` does.
    fhir::IssueList tls_issues;
    if (config.server.tls) s.server_tls = ServerTlsContext(*config.server.tls, tls_issues);
    if (tls_issues.HasErrors()) {
        for (const fhir::Issue& issue : tls_issues) {
            Log::Error("cannot set up TLS", {{"path", issue.path}, {"problem", issue.message}});
        }
        return Error::kInvalidConfig;
    }
    auto ehr =
        EhrConnection::Open(s.io.get_executor(), config.ehr,
                            static_cast<std::size_t>(std::max(1, config.worker.concurrency)));
    if (!ehr) return ehr.error();
    s.ehr = std::move(*ehr);
    s.observed_ehr = std::make_unique<ObservedEhr>(s.ehr->ehr(), s.ehr_health);
    s.worker = std::make_unique<Worker>(
        s.io.get_executor(), config.worker, *s.store, *s.observed_ehr,
        [&s] { return s.rules->Snapshot(); }, s.metrics, *s.audit, s.now);
    if (config.audit.fhir_audit_events) {
        s.worker->PostAuditEvents("MicroCare " MICROCARE_VERSION, config.ehr.base_url);
    }
    // New jobs' trigger records are committed with them; written into the trail right after
    // (the worker woken once they are there, so they precede its records of the same jobs).
    s.trail_notes = std::make_unique<TrailNotes>(s.io.get_executor(), s.blocking, *s.store,
                                                 *s.audit, s.metrics, [&s] { s.worker->Wake(); });
    if (config.poll.enabled) {
        s.poller = std::make_unique<EhrPoller>(
            asio::make_strand(s.io), config.poll, config.ehr.base_url, *s.observed_ehr, *s.store,
            [&s] { return s.rules->Snapshot(); }, s.metrics, s.blocking, s.poll_health, s.now,
            [&s] { s.trail_notes->Nudge(); });
    }
    // Ready is "can take triggers"; an unreachable EHR only degrades the service, since
    // triggers are journaled and written back once it returns.
    s.endpoint = std::make_unique<FhirEndpoint>(
        config.server, *s.store, s.metrics, s.blocking, *s.audit,
        FhirEndpoint::LiveState{
            [&s] { return s.ready.load(); }, [&s] { return s.rules->Snapshot()->Identity(); },
            [&s] { return s.server->stats(); }, [&s] { return s.Reload("admin"); },
            [&s] { return s.ehr_health.Read(); }, s.now,
            [&s]() -> std::optional<PollHealth::Reading> {
                if (!s.poller) return std::nullopt;
                return s.poll_health.Read();
            }});
    if (config.cds.enabled) {
        // Its own client: the EHR's client certificate and credentials are not for the
        // servers a CDS request names.
        EhrSettings trust;
        trust.ca_file = config.cds.ca_file;
        fhir::IssueList cds_issues;
        s.cds_tls = EhrTlsContext(trust, cds_issues);
        if (!s.cds_tls) {
            for (const fhir::Issue& issue : cds_issues) {
                Log::Error("cannot set up TLS for CDS Hooks",
                           {{"path", "cds.caFile"}, {"problem", issue.message}});
            }
            return Error::kInvalidConfig;
        }
        HttpClientOptions cds_http_options;
        cds_http_options.request_timeout = config.cds.fetch_timeout;
        s.cds_http =
            std::make_unique<HttpClient>(s.io.get_executor(), *s.cds_tls, cds_http_options);
        s.cds = std::make_unique<CdsRoutes>(config.cds,
                                            CdsRoutes::Deps{[&s] { return s.rules->Snapshot(); },
                                                            *s.audit,
                                                            s.blocking,
                                                            *s.cds_http,
                                                            s.now,
                                                            {}});
        s.endpoint->SetCds(s.cds.get());
    }
    s.reloader = std::make_unique<Reloader>(
        config_path, config, *s.rules, *s.audit, [&s](const ServiceConfig& now_in_force) {
            if (auto level = ParseLogLevel(now_in_force.log_level)) Log::SetLevel(*level);
            s.endpoint->SetCredentials(now_in_force.server);
        });
    TrailNotes* trail_notes = s.trail_notes.get();
    FhirEndpoint* endpoint = s.endpoint.get();
    s.server = std::make_unique<HttpServer>(
        s.io, config.server, s.server_tls.get(),
        [endpoint, trail_notes](HttpRequestIn request) -> asio::awaitable<HttpResponseOut> {
            HttpResponseOut out = co_await endpoint->Handle(std::move(request));
            if (out.status < 300) trail_notes->Nudge();
            co_return out;
        },
        FhirEndpoint::ProtocolRefusal,
        [endpoint](const HttpRequestIn& head) { return endpoint->Admit(head); });
    auto port = s.server->Listen();
    if (!port) return port.error();
    s.port = *port;
    return service;
}

unsigned short Service::port() const { return impl_->port; }

JobStore& Service::store() { return *impl_->store; }

ReloadReport Service::Reload(std::string_view trigger) { return impl_->Reload(trigger); }

namespace {

// Each SIGHUP rereads the files on the blocking pool (never on an I/O thread); signals that
// arrive during a reload are coalesced by the signal_set into one more reload.
asio::awaitable<void> ReloadOnHangup(asio::signal_set& hangups, asio::thread_pool& blocking,
                                     Service& service) {
    for (;;) {
        auto [ec, signal] = co_await hangups.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        co_await Offload(blocking, [&service] { return service.Reload("SIGHUP"); });
    }
}

}  // namespace

void Service::Start(bool handle_signals) {
    Impl& s = *impl_;
    if (handle_signals) {
        s.stop_signals.emplace(s.io, SIGTERM, SIGINT);
        s.stop_signals->async_wait([this](const boost::system::error_code& ec, int) {
            if (!ec) std::thread([this] { Stop(); }).detach();
        });
        s.reload_signals.emplace(s.io, SIGHUP);
        asio::co_spawn(s.io, ReloadOnHangup(*s.reload_signals, s.blocking, *this), asio::detached);
    }
    s.work.emplace(s.io.get_executor());
    s.server->Start();
    s.worker->Start();
    // Jobs that other replicas sharing the store enqueue or free are leased at once, not at
    // the next poll (a PostgreSQL store's LISTEN/NOTIFY; SQLite has no other writers).
    s.store->OnWorkAvailable([worker = s.worker.get()] { worker->Wake(); });
    // What the command line committed (jobs retry, purge) reaches the trail within seconds.
    asio::co_spawn(s.io, s.trail_notes->NudgeEvery(std::chrono::seconds(2)),
                   ReportFailure("audit trail writer", s.metrics.tasks_failed));
    if (s.poller) {
        asio::co_spawn(s.poller->executor(), s.poller->Run(),
                       ReportFailure("encounter poller", s.metrics.tasks_failed));
    }
    const int threads = std::max(1, s.config.server.threads);
    for (int i = 0; i < threads; ++i) {
        s.threads.emplace_back([&s] {
            NameThisThread("microcare-io");
            s.io.run();
        });
    }
    s.ready = true;
    // Part of the record: which program, under which rules, took triggers from when.
    const rules::PackIdentity pack = s.rules->Snapshot()->Identity();
    (void)s.audit->Append("service-start", {{"version", MICROCARE_VERSION},
                                            {"pack", pack.id + " " + pack.version},
                                            {"packSha256", pack.sha256},
                                            {"ehr", s.config.ehr.base_url},
                                            {"tls", s.server_tls ? "on" : "off"}});
    Log::Info("MicroCare is listening", {{"port", std::to_string(s.port)},
                                         {"tls", s.server_tls ? "on" : "off"},
                                         {"ehr", s.config.ehr.base_url}});
}

void Service::Stop() {
    Impl& s = *impl_;
    {
        std::lock_guard lock(s.mutex);
        if (s.stopped) return;
        s.stopped = true;
    }
    s.ready = false;
    if (!s.threads.empty()) {
        Log::Info("stopping: no new connections; finishing work in flight");
        s.server->Stop();
        // A page in flight is journaled whole or not at all; the next start reads it again.
        if (s.poller) s.poller->Stop();
        auto grace =
            std::chrono::duration_cast<std::chrono::milliseconds>(s.config.worker.shutdown_grace);
        const auto deadline = std::chrono::steady_clock::now() + grace;
        s.store->OnWorkAvailable(nullptr);
        auto done = asio::co_spawn(s.io, s.worker->Stop(grace), asio::use_future);
        done.wait();
        // Requests in flight (a trigger waiting for its commit) are answered before the I/O
        // threads stop; only connections still open when the grace period ends are cut.
        while (s.server->open_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        s.work.reset();
        s.io.stop();
        for (std::thread& t : s.threads) t.join();
        s.threads.clear();
    }
    // The I/O threads are gone: nothing else touches the signal sets now.
    s.reload_signals.reset();
    s.stop_signals.reset();
    s.blocking.join();
    // The trigger records of the last jobs, before the service-stop record.
    if (s.store && s.audit && s.trail_notes) {
        if (auto written = WriteAdminNotes(*s.store, *s.audit); !written) {
            Log::Error("cannot write records into the audit trail; the next start writes them",
                       {{"error", written.error().message()}});
        }
    }
    if (s.store) s.store->Close();
    if (s.audit) (void)s.audit->Append("service-stop", {{"version", MICROCARE_VERSION}});
    Log::Info("stopped");
    std::lock_guard lock(s.mutex);
    s.finished = true;
    s.stopped_cv.notify_all();
}

void Service::Wait(bool handle_signals) {
    Impl& s = *impl_;
    // Started without them: arm them now (a signal before this point has its default action).
    if (handle_signals && !s.stop_signals) {
        asio::post(s.io, [this, &s] {
            s.stop_signals.emplace(s.io, SIGTERM, SIGINT);
            s.stop_signals->async_wait([this](const boost::system::error_code& ec, int) {
                if (!ec) std::thread([this] { Stop(); }).detach();
            });
        });
    }
    std::unique_lock lock(s.mutex);
    s.stopped_cv.wait(lock, [&s] { return s.finished; });
}

}  // namespace microcare::adapter
