// The poller's decisions, without sockets or sleeps: an in-memory EHR that answers searches the
// way a FHIR server does (`_lastUpdated=gt`, `_sort=_lastUpdated`, `_count`, `next` links,
// `_revinclude`), a set clock, and a real store in a temporary directory.
#include "adapter/poll/ehr_poller.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/url/parse_query.hpp>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

#include "adapter/client/outbound_url.hpp"
#include "adapter/jobs/job_contract.hpp"
#include "adapter/poll/poll_cursor.hpp"
#include "adapter/server/readiness.hpp"
#include "adapter/time_bound.hpp"
#include "fhir/date_time.hpp"
#include "tests/unit/adapter/service/in_memory_ehr.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"
#include "tests/unit/rules/source_files.hpp"

namespace microcare::adapter {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using test_support::ErrorOf;
using test_support::ValueOf;

constexpr std::string_view kBase = "https://ehr.test/fhir";

std::string Text(TimePoint instant) { return PollInstant(instant); }

std::string Param(std::string_view query, std::string_view name) {
    auto parsed = boost::urls::parse_query(query);
    if (!parsed) return {};
    for (const auto& param : *parsed) {
        if (param.key.decode() == name) return param.value.decode();
    }
    return {};
}

// Searches answered as a FHIR server answers them, from what the test put there. A server
// with coarse `_lastUpdated` stamps whole seconds.
class SearchableEhr : public Ehr {
public:
    struct Stored {
        std::string id;
        std::string type_text;
        int version = 1;
        TimePoint last_updated;
        bool has_version = true;
    };

    bool coarse = false;
    std::optional<Error> unreachable;
    std::optional<unsigned> status;            // every answer with this status instead
    std::size_t fail_from_request = 0;         // 1-based; 0: never
    std::optional<std::string> next_override;  // a `next` link of the server's choosing
    std::vector<std::string> requests;
    // The server's clock, sent as the Date of its answers (to the second); unset: no Date.
    std::optional<TimePoint> clock;

    void Finish(const std::string& id, const std::string& type_text, TimePoint when,
                int version = 1) {
        if (coarse) when = std::chrono::floor<std::chrono::seconds>(when);
        encounters_[id] = Stored{id, type_text, version, when};
    }
    // A microneedling Procedure performed in the encounter: the recognition the worker uses
    // counts an encounter named only "Aesthetic treatment visit" through it.
    void Procedure(const std::string& encounter_id) { procedures_.insert(encounter_id); }
    void DropVersionId(const std::string& id) { encounters_[id].has_version = false; }

    struct Booked {
        std::string status;
        std::string service;
        TimePoint start;
        int version = 1;
        TimePoint last_updated;
    };
    // Books (or changes: a new version) an appointment.
    void Book(const std::string& id, const std::string& service, TimePoint start, TimePoint when,
              const std::string& status = "booked") {
        const int version = appointments_.contains(id) ? appointments_[id].version + 1 : 1;
        appointments_[id] = Booked{status, service, start, version, when};
    }

    asio::awaitable<Result<HttpResponse>> Get(std::string url) override {
        requests.push_back(url);
        if (unreachable && (fail_from_request == 0 || requests.size() >= fail_from_request)) {
            co_return *unreachable;
        }
        if (status) co_return Answer(*status, R"({"resourceType":"OperationOutcome"})");
        if (url == "metadata") {
            HttpResponse answer = Answer(200, R"({"resourceType":"CapabilityStatement"})");
            if (clock) {
                const std::time_t t = std::chrono::system_clock::to_time_t(*clock);
                std::tm tm{};
                gmtime_r(&t, &tm);
                char date[64];
                std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
                answer.headers.emplace_back("date", date);
            }
            co_return answer;
        }
        const std::string query = url.substr(url.find('?') + 1);
        if (url.starts_with("Appointment?")) co_return Answer(200, Appointments(query));
        const std::string after = Param(query, "_lastUpdated");
        const TimePoint gt = ParseInstant(after.substr(2)).value();
        const std::size_t count = std::stoul(Param(query, "_count"));
        const std::size_t offset =
            Param(query, "_offset").empty() ? 0 : std::stoul(Param(query, "_offset"));
        std::vector<const Stored*> matches;
        for (const auto& [id, stored] : encounters_) {
            if (stored.last_updated > gt) matches.push_back(&stored);
        }
        std::stable_sort(matches.begin(), matches.end(), [](const Stored* a, const Stored* b) {
            return a->last_updated < b->last_updated;
        });
        std::string body = R"({"resourceType":"Bundle","type":"searchset","entry":[)";
        bool first = true;
        for (std::size_t i = offset; i < std::min(matches.size(), offset + count); ++i) {
            const Stored& e = *matches[i];
            body += first ? "" : ",";
            first = false;
            body += R"({"resource":{"resourceType":"Encounter","id":")" + e.id + R"(","meta":{)" +
                    (e.has_version ? R"("versionId":")" + std::to_string(e.version) + "\"," : "") +
                    R"("lastUpdated":")" + Text(e.last_updated) +
                    R"("},"status":"finished","type":[{"text":")" + e.type_text +
                    R"("}],"subject":{"reference":"Patient/p1"}}})";
        }
        body += "]";
        if (next_override) {
            body += R"(,"link":[{"relation":"next","url":")" + *next_override + "\"}]";
        } else if (offset + count < matches.size()) {
            std::string next = std::string(kBase) + "/Encounter?" +
                               query.substr(0, query.find("&_offset")) +
                               "&_offset=" + std::to_string(offset + count);
            body += R"(,"link":[{"relation":"next","url":")" + next + "\"}]";
        }
        co_return Answer(200, body + "}");
    }
    asio::awaitable<Result<HttpResponse>> Post(std::string, std::string) override {
        co_return Error::kBadResponse;  // a poll never writes
    }
    // Only the poll's search for the Procedures of a page's encounters.
    asio::awaitable<Result<SearchResult>> SearchAll(std::string query) override {
        requests.push_back(query);
        if (unreachable) co_return *unreachable;
        if (!query.starts_with("Procedure?")) co_return Error::kBadResponse;
        std::string body = R"({"resourceType":"Bundle","type":"searchset","entry":[)";
        bool first = true;
        const std::string values = Param(query.substr(10), "encounter");
        for (std::string_view wanted = values; !wanted.empty();) {
            const auto comma = wanted.find(',');
            const std::string id(wanted.substr(10, comma - 10));  // after "Encounter/"
            wanted = comma == std::string_view::npos ? "" : wanted.substr(comma + 1);
            if (!procedures_.contains(id)) continue;
            body += std::string(first ? "" : ",") +
                    R"({"resource":{"resourceType":"Procedure","id":"proc-)" + id +
                    R"(","status":"completed","code":{"text":"Microneedling"},)"
                    R"("subject":{"reference":"Patient/p1"},"encounter":{"reference":"Encounter/)" +
                    id + R"("}}})";
            first = false;
        }
        co_return testing::OnePageResult(body + "]}");
    }

private:
    // `_lastUpdated=gt`, `status` and `date=ge`/`date=le` (dates: whole days), on one page.
    std::string Appointments(const std::string& query) const {
        std::string gt, status, ge, le;
        for (const auto& param : *boost::urls::parse_query(query)) {
            const std::string value = param.value.decode();
            if (param.key == "_lastUpdated") gt = value.substr(2);
            if (param.key == "status") status = value;
            if (param.key == "date" && value.starts_with("ge")) ge = value.substr(2);
            if (param.key == "date" && value.starts_with("le")) le = value.substr(2);
        }
        std::string body = R"({"resourceType":"Bundle","type":"searchset","entry":[)";
        bool first = true;
        for (const auto& [id, a] : appointments_) {
            const std::string day = Text(a.start).substr(0, 10);
            if (!gt.empty() && a.last_updated <= ParseInstant(gt).value()) continue;
            if (!status.empty() && a.status != status) continue;
            if ((!ge.empty() && day < ge) || (!le.empty() && day > le)) continue;
            body +=
                std::string(first ? "" : ",") +
                R"({"resource":{"resourceType":"Appointment","id":")" + id +
                R"(","meta":{"versionId":")" + std::to_string(a.version) + R"(","lastUpdated":")" +
                Text(a.last_updated) + R"("},"status":")" + a.status +
                R"(","serviceType":[{"text":")" + a.service + R"("}],"start":")" + Text(a.start) +
                R"(","participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"}]}})";
            first = false;
        }
        return body + "]}";
    }

    static HttpResponse Answer(unsigned code, std::string body) {
        HttpResponse response;
        response.status = code;
        response.body = std::move(body);
        return response;
    }

    std::map<std::string, Stored> encounters_;
    std::set<std::string> procedures_;
    std::map<std::string, Booked> appointments_;
};

class EhrPollerTest : public ::testing::Test {
protected:
    EhrPollerTest() {
        StoreOptions options;
        options.synchronous_full = false;
        options.busy_timeout = 50ms;
        options.now = [this] { return now_; };
        store_ = ValueOf(JobStore::Open(path_, options));
        settings_.enabled = true;
        settings_.page_size = 2;
        settings_.overlap = 60s;
        settings_.backoff_initial = 5s;
        settings_.backoff_max = 40s;
        settings_.interval = 30s;
        UseSettings(settings_);
    }
    ~EhrPollerTest() override {
        poller_.reset();
        blocking_.join();
        store_->Close();
    }

    void UseSettings(const PollSettings& settings) {
        settings_ = settings;
        poller_ = std::make_unique<EhrPoller>(
            io_.get_executor(), settings_, std::string(kBase), ehr_, *store_,
            [] {
                return std::shared_ptr<const rules::RuleSet>(&rules::testing::DefaultPack(),
                                                             [](const rules::RuleSet*) {});
            },
            metrics_, blocking_, health_, [this] { return now_; }, [this] { ++journaled_; });
    }

    template <typename T>
    T Run(asio::awaitable<T> work) {
        auto done = asio::co_spawn(io_, std::move(work), asio::use_future);
        io_.restart();
        io_.run();
        return done.get();
    }
    Result<PollReport> Poll() { return Run(poller_->PollOnce()); }
    PollReport PollOk() {
        auto report = Poll();
        EXPECT_TRUE(report.has_value()) << report.error().message();
        return report ? *report : PollReport{};
    }

    PollCursor Cursor() {
        return ValueOf(store_->ReadPollCursor(std::string(EhrPoller::kPollName))).value();
    }
    std::set<std::string> TriggerKeys() {
        JobFilter filter;
        filter.limit = 1000;
        std::set<std::string> keys;
        for (const Job& job : ValueOf(store_->List(filter))) keys.insert(job.trigger_key);
        return keys;
    }

    test_support::TempDirectory dir_;
    const std::string path_ = dir_.File("jobs.db");
    TimePoint now_ = std::chrono::floor<std::chrono::milliseconds>(
        std::chrono::sys_days(std::chrono::year{2026} / 12 / 1) + 9h);
    std::unique_ptr<JobStore> store_;
    PollSettings settings_;
    Metrics metrics_;
    PollHealth health_;
    asio::io_context io_;
    asio::thread_pool blocking_{1};
    SearchableEhr ehr_;
    std::unique_ptr<EhrPoller> poller_;
    int journaled_ = 0;

    // A poller whose first start took `since` an hour back.
    void SinceAnHourAgo() {
        settings_.since = now_ - 1h;
        UseSettings(settings_);
    }

    // Five microneedling encounters finished a second apart, a minute ago: three pages of two.
    void FinishFive() {
        for (int i = 1; i <= 5; ++i) {
            ehr_.Finish("e" + std::to_string(i), "Microneedling", now_ - 60s + i * 1s);
        }
    }
};

TEST_F(EhrPollerTest, FirstStartBeginsNowAndDoesNotBackfill) {
    ehr_.Finish("before", "Microneedling", now_ - 1h);
    ehr_.Finish("just-before", "Microneedling", now_ - 10s);  // inside the overlap window
    const PollReport first = PollOk();
    EXPECT_EQ(first.queued, 0u);
    EXPECT_EQ(Cursor().floor, now_);
    EXPECT_EQ(Cursor().high_water, now_);
    EXPECT_EQ(ehr_.requests.at(0), "metadata");  // no Date: MicroCare's clock
    EXPECT_NE(ehr_.requests.at(1).find("_lastUpdated=gt" + QueryValue(Text(now_))),
              std::string::npos)
        << ehr_.requests.at(1);

    // A restart later keeps the first start's floor: `now` is read once, at the first start.
    now_ += 1h;
    ehr_.Finish("after", "Microneedling", now_ - 50min);
    const PollReport second = PollOk();
    EXPECT_EQ(second.queued, 1u);
    EXPECT_EQ(TriggerKeys(), std::set<std::string>{"poll:Encounter/after|1"});
}

// The EHR's clock is 30 s behind MicroCare's: `since: now` is its now, so a visit it stamps
// just after the first start is assessed although the stamp is in MicroCare's past.
TEST_F(EhrPollerTest, FirstStartTakesNowFromTheEhrsClock) {
    const TimePoint ehr_now = now_ - 30s;
    ehr_.clock = ehr_now;
    ehr_.Finish("before", "Microneedling", ehr_now - 2s);
    EXPECT_EQ(PollOk().queued, 0u);
    EXPECT_EQ(Cursor().floor, ehr_now);
    ehr_.Finish("after", "Microneedling", ehr_now + 5s);
    EXPECT_EQ(PollOk().queued, 1u);
    EXPECT_EQ(TriggerKeys(), std::set<std::string>{"poll:Encounter/after|1"});
    EXPECT_EQ(std::count(ehr_.requests.begin(), ehr_.requests.end(), "metadata"), 1);
}

TEST_F(EhrPollerTest, SinceAnInstantBackfillsFromThere) {
    settings_.since = now_ - 2h;
    UseSettings(settings_);
    ehr_.Finish("old", "Microneedling", now_ - 3h);
    ehr_.Finish("recent", "Microneedling", now_ - 1h);
    EXPECT_EQ(PollOk().queued, 1u);
    EXPECT_EQ(TriggerKeys(), std::set<std::string>{"poll:Encounter/recent|1"});
    EXPECT_EQ(Cursor().high_water, now_ - 1h);
    EXPECT_EQ(Cursor().floor, now_ - 2h);
}

TEST_F(EhrPollerTest, OnlyMicroneedlingEncountersBecomeJobs) {
    SinceAnHourAgo();
    ehr_.Finish("named", "Microneedling", now_ - 50min);
    ehr_.Finish("consult", "Consultation", now_ - 40min);
    ehr_.Finish("by-procedure", "Aesthetic treatment visit", now_ - 30min);
    ehr_.Procedure("by-procedure");
    const PollReport report = PollOk();
    EXPECT_EQ(report.encounters, 3u);
    EXPECT_EQ(report.queued, 2u);
    EXPECT_EQ(report.skipped, 1u);
    EXPECT_EQ(TriggerKeys(),
              (std::set<std::string>{"poll:Encounter/named|1", "poll:Encounter/by-procedure|1"}));
    EXPECT_EQ(metrics_.poll_encounters_skipped.load(), 1u);
    // Per page (of two): the Encounters, then the Procedures of those that do not name
    // microneedling themselves.
    EXPECT_EQ(report.requests, 4u);
    ASSERT_EQ(ehr_.requests.size(), 4u);
    EXPECT_EQ(ehr_.requests[1], "Procedure?encounter=Encounter%2Fconsult&_count=2");
    EXPECT_EQ(ehr_.requests[3], "Procedure?encounter=Encounter%2Fby-procedure&_count=2");
    // The consultation's stamp still moves the cursor: it need not be read again.
    EXPECT_EQ(Cursor().high_water, now_ - 30min);
}

TEST_F(EhrPollerTest, AVersionAlreadySeenIsNotQueuedTwiceButANewOneIs) {
    SinceAnHourAgo();
    ehr_.Finish("e1", "Microneedling", now_ - 10s);
    ehr_.Finish("e2", "Microneedling", now_ - 5s);
    ehr_.DropVersionId("e2");
    EXPECT_EQ(PollOk().queued, 2u);
    const PollReport again = PollOk();  // both inside the overlap window: read again
    EXPECT_EQ(again.queued, 0u);
    EXPECT_EQ(again.seen, 2u);
    ehr_.Finish("e1", "Microneedling", now_ - 1s, 2);  // amended after it was finished
    EXPECT_EQ(PollOk().queued, 1u);
    EXPECT_EQ(TriggerKeys(), (std::set<std::string>{"poll:Encounter/e1|1", "poll:Encounter/e1|2",
                                                    "poll:Encounter/e2|@" + Text(now_ - 5s)}));
    // Each new job has its audit record, committed with it; the re-reads have none.
    const auto notes = ValueOf(store_->PendingAdminNotes(100));
    ASSERT_EQ(notes.size(), 3u);
    for (const AdminNote& note : notes) {
        EXPECT_EQ(note.event, "trigger");
        EXPECT_EQ(note.fields.at(0), (std::pair<std::string, std::string>{"channel", "poll"}));
        EXPECT_EQ(note.fields.back().first, "job");
    }
    EXPECT_EQ(journaled_, 2);  // after the two pages that queued something
}

// Coarse or equal stamps: a server that stamps whole seconds gives an encounter finished after
// a poll the same `_lastUpdated` as the last one that poll saw, and one committed late an
// older stamp still. `gt{cursor}` alone misses both; the overlap window does not.
TEST_F(EhrPollerTest, TheOverlapWindowCatchesEqualAndLateStamps) {
    ehr_.coarse = true;
    for (auto overlap : {0ms, 60000ms}) {
        SCOPED_TRACE(overlap.count());
        test_support::TempDirectory dir;
        store_->Close();
        StoreOptions options;
        options.synchronous_full = false;
        store_ = ValueOf(JobStore::Open(dir.File("jobs.db"), options));
        settings_.overlap = overlap;
        settings_.since = now_ - 1h;
        UseSettings(settings_);
        ehr_ = SearchableEhr();
        ehr_.coarse = true;
        ehr_.Finish("a", "Microneedling", now_ + 300ms);
        EXPECT_EQ(PollOk().queued, 1u);
        ehr_.Finish("same-second", "Microneedling", now_ + 900ms);
        ehr_.Finish("late", "Microneedling", now_ - 20s);
        const PollReport report = PollOk();
        if (overlap == 0ms) {
            EXPECT_EQ(report.queued, 0u) << "the fake should show why the window is needed";
        } else {
            EXPECT_EQ(report.queued, 2u);
            EXPECT_EQ(report.seen, 1u);
        }
        store_->Close();
        store_ = ValueOf(JobStore::Open(path_, options));  // the fixture's, for teardown
    }
}

TEST_F(EhrPollerTest, PagesAreJournaledOneByOneAndACrashRereadsNeverSkips) {
    SinceAnHourAgo();
    FinishFive();
    ehr_.unreachable = Error::kConnectionFailed;
    ehr_.fail_from_request = 2;  // the first page answers, the second does not
    EXPECT_EQ(ErrorOf(Poll()), Error::kConnectionFailed);
    EXPECT_EQ(TriggerKeys(), (std::set<std::string>{"poll:Encounter/e1|1", "poll:Encounter/e2|1"}));
    EXPECT_EQ(Cursor().high_water, now_ - 58s);  // page one's latest, no further

    // A new process on the same store goes on from there and makes nothing twice.
    ehr_.unreachable.reset();
    UseSettings(settings_);
    const PollReport report = PollOk();
    EXPECT_EQ(report.queued, 3u);
    EXPECT_EQ(report.seen, 2u);
    EXPECT_EQ(TriggerKeys().size(), 5u);
    EXPECT_EQ(Cursor().high_water, now_ - 55s);
}

TEST_F(EhrPollerTest, TheCursorMovesOnlyWhenThePageIsJournaled) {
    SinceAnHourAgo();
    ehr_.Finish("e1", "Microneedling", now_ - 30s);
    ASSERT_EQ(PollOk().queued, 1u);
    const PollCursor before = Cursor();
    ehr_.Finish("e2", "Microneedling", now_ - 10s);

    // Another process holds the database's write lock: the EHR answers, the commit cannot be
    // made, and nothing of the page may count as done.
    sqlite3* other = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
    EXPECT_EQ(ErrorOf(Poll()), Error::kStoreFailed);
    sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(other);
    EXPECT_EQ(Cursor().high_water, before.high_water);
    EXPECT_EQ(TriggerKeys().size(), 1u);

    EXPECT_EQ(PollOk().queued, 1u);  // the next poll journals it
    EXPECT_EQ(Cursor().high_water, now_ - 10s);
}

TEST_F(EhrPollerTest, APollReadsAtMostMaxPagesAndTheRestWaits) {
    settings_.since = now_ - 1h;
    settings_.max_pages = 2;
    UseSettings(settings_);
    FinishFive();
    const PollReport first = PollOk();
    EXPECT_EQ(first.requests, 2u);
    EXPECT_TRUE(first.more);
    EXPECT_EQ(first.queued, 4u);
    const PollReport second = PollOk();
    EXPECT_EQ(second.queued, 1u);
    EXPECT_FALSE(second.more);
    EXPECT_EQ(TriggerKeys().size(), 5u);
    EXPECT_EQ(metrics_.poll_requests.load(), first.requests + second.requests);
}

TEST_F(EhrPollerTest, MaxPagesBoundsPagesOfEncountersNotTheirProcedureSearches) {
    settings_.since = now_ - 1h;
    settings_.max_pages = 1;
    UseSettings(settings_);
    for (const char* id : {"v1", "v2", "v3"}) {
        ehr_.Finish(id, "Aesthetic treatment visit", now_ - 30s + 1s * (id[1] - '0'));
        ehr_.Procedure(id);
    }
    const PollReport first = PollOk();
    EXPECT_EQ(first.requests, 2u);  // one page of Encounters, the search of their Procedures
    EXPECT_EQ(first.queued, 2u);
    EXPECT_TRUE(first.more);
    const PollReport second = PollOk();
    EXPECT_EQ(second.queued, 1u);
    EXPECT_FALSE(second.more);
    EXPECT_EQ(TriggerKeys().size(), 3u);
}

TEST_F(EhrPollerTest, ANextLinkAwayFromTheBaseFailsThePollAndJournalsNothing) {
    SinceAnHourAgo();
    ehr_.Finish("e1", "Microneedling", now_ - 30s);
    ehr_.next_override = "https://elsewhere.test/fhir/Encounter?page=2";
    EXPECT_EQ(ErrorOf(Poll()), Error::kBadResponse);
    EXPECT_TRUE(TriggerKeys().empty());
    EXPECT_EQ(ehr_.requests.size(), 1u);  // never followed
}

TEST_F(EhrPollerTest, FailedPollsBackOffAndDegradeReadinessUntilOneSucceeds) {
    ehr_.unreachable = Error::kTimeout;
    EXPECT_EQ(Run(poller_->PollAndRecord()), 5s);
    EXPECT_EQ(Run(poller_->PollAndRecord()), 10s);
    EXPECT_EQ(Run(poller_->PollAndRecord()), 20s);
    EXPECT_EQ(Run(poller_->PollAndRecord()), 40s);
    EXPECT_EQ(Run(poller_->PollAndRecord()), 40s);  // capped at backoffMax
    EXPECT_EQ(metrics_.poll_failures.load(), 5u);
    Readiness readiness{true, {}, true, health_.Read()};
    EXPECT_EQ(readiness.HttpStatus(), 200u);
    std::string body = ReadinessJson(readiness, {});
    EXPECT_TRUE(body.starts_with(R"({"status":"degraded",)")) << body;
    EXPECT_NE(body.find(R"("poll":"failing")"), std::string::npos) << body;

    ehr_.unreachable.reset();
    ehr_.status = 404;  // a refused search fails the poll the same way
    EXPECT_EQ(Run(poller_->PollAndRecord()), 40s);
    ehr_.status.reset();
    EXPECT_EQ(Run(poller_->PollAndRecord()), 30s);  // the interval again
    readiness.poll = health_.Read();
    body = ReadinessJson(readiness, {});
    EXPECT_TRUE(body.starts_with(R"({"status":"ready",)")) << body;
    EXPECT_NE(body.find(R"("poll":"ok","pollLastSuccess")"), std::string::npos) << body;
}

TEST(PollCursor, SearchesFromTheCursorLessTheOverlapNeverBelowTheFloor) {
    const TimePoint floor(1000000ms);
    EXPECT_EQ(SearchAfter(PollCursor{floor + 10s, floor}, 60s), floor);
    EXPECT_EQ(SearchAfter(PollCursor{floor + 90s, floor}, 60s), floor + 30s);
    EXPECT_EQ(PollSearch("Encounter?_lastUpdated=gt{cursor}&_count={count}", TimePoint(1234ms), 7),
              "Encounter?_lastUpdated=gt1970-01-01T00%3A00%3A01.234Z&_count=7");
}

// Pre-visit screening: microneedling appointments in the horizon, one job per version (booked,
// moved, cancelled), the rest skipped; all that without a search of Encounters finding any.
TEST_F(EhrPollerTest, BookedMicroneedlingAppointmentsAreScreenedOncePerVersion) {
    settings_.appointments.enabled = true;
    settings_.appointments.horizon_days = 14;
    settings_.appointments.rescreen_every = 24h;
    SinceAnHourAgo();
    ehr_.Book("a1", "Microneedling", now_ + 72h, now_ - 30min);
    ehr_.Book("consult", "Consultation", now_ + 72h, now_ - 20min);
    ehr_.Book("far", "Microneedling", now_ + 40 * 24h, now_ - 10min);  // beyond the horizon
    PollReport first = PollOk();
    // The first poll's changes and its first re-screening both find a1 (two keys, by design:
    // the re-screening does not know what the other search journaled).
    EXPECT_TRUE(first.rescreened);
    EXPECT_EQ(TriggerKeys(),
              (std::set<std::string>{"screen:Appointment/a1|1",
                                     "screen:Appointment/a1|rescreen@" + Text(now_ - 1h)}));
    EXPECT_EQ(first.screenings, 2u);
    EXPECT_EQ(metrics_.poll_appointments_skipped.load(), 2u);  // the consultation, twice
    bool horizon = false;
    for (const std::string& r : ehr_.requests) {
        horizon = horizon || r.find("date=le2026-12-15") != std::string::npos;
    }
    EXPECT_TRUE(horizon) << "the horizon is 14 days from 2026-12-01";

    now_ += 1min;
    EXPECT_EQ(PollOk().screenings, 0u);                  // the overlap window re-reads a1: seen
    ehr_.Book("a1", "Microneedling", now_ + 96h, now_);  // moved: version 2
    now_ += 1min;
    EXPECT_EQ(PollOk().screenings, 1u);
    ehr_.Book("a1", "Microneedling", now_ + 96h, now_, "cancelled");
    now_ += 1min;
    EXPECT_EQ(PollOk().screenings, 1u);
    EXPECT_TRUE(TriggerKeys().contains("screen:Appointment/a1|2"));
    EXPECT_TRUE(TriggerKeys().contains("screen:Appointment/a1|3"));
    JobFilter filter;
    filter.limit = 100;
    for (const Job& job : ValueOf(store_->List(filter))) {
        EXPECT_EQ(job.kind, kJobScreen);
        EXPECT_EQ(job.encounter, "Appointment/a1");  // one at a time per appointment
    }
}

TEST_F(EhrPollerTest, EveryBookedAppointmentIsScreenedAgainEachRescreenInterval) {
    settings_.appointments.enabled = true;
    settings_.appointments.rescreen_every = 24h;
    UseSettings(settings_);
    PollOk();  // the first start: nothing booked yet
    // Its three searches (encounters, appointments, re-screening) start from one reading of
    // the EHR's clock.
    EXPECT_EQ(std::count(ehr_.requests.begin(), ehr_.requests.end(), "metadata"), 1);
    ehr_.Book("a1", "Microneedling", now_ + 72h, now_ - 5h);  // booked before, unchanged since
    now_ += 1h;
    EXPECT_EQ(PollOk().screenings, 0u);  // the next re-screening is not due
    now_ += 24h;
    const PollReport due = PollOk();
    EXPECT_TRUE(due.rescreened);
    EXPECT_EQ(due.screenings, 1u);
    const auto keys = TriggerKeys();
    ASSERT_EQ(keys.size(), 1u);
    EXPECT_TRUE(keys.begin()->starts_with("screen:Appointment/a1|rescreen@"));
    now_ += 1h;
    EXPECT_FALSE(PollOk().rescreened);
}

}  // namespace
}  // namespace microcare::adapter
