// The worker's decisions, without sockets or sleeps: an in-memory EHR, a set clock, a real
// store in a temporary directory. Each test drives one attempt at a time with RunOnce.
#include "adapter/service/worker.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <fstream>
#include <iterator>

#include "adapter/jobs/job_contract.hpp"
#include "tests/unit/adapter/service/in_memory_ehr.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"
#include "tests/unit/rules/source_files.hpp"

namespace microcare::adapter {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

const char* kIsotretinoin = R"({"resourceType":"MedicationRequest","id":"mr1","status":"active",
  "intent":"order","subject":{"reference":"Patient/p1"},"authoredOn":"2026-11-01",
  "medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm",
  "code":"197843"}]}})";

const char* kPatient = R"({"resourceType":"Patient","id":"p1","birthDate":"1990-01-01"})";
const char* kEncounter = R"({"resourceType":"Encounter","id":"e1","status":"finished",
  "class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},
  "type":[{"text":"Microneedling"}],"subject":{"reference":"Patient/p1"},
  "period":{"start":"2026-11-20T10:00:00Z","end":"2026-11-20T11:00:00Z"}})";

class WorkerTest : public ::testing::Test {
protected:
    WorkerTest() {
        StoreOptions options;
        options.synchronous_full = false;
        options.now = [this] { return now_; };
        store_ = test_support::ValueOf(JobStore::Open(dir_.File("jobs.db"), options));
        audit_ = test_support::ValueOf(AuditLog::Open(dir_.File("audit.log")));
        settings_.backoff_initial = 1s;
        settings_.backoff_max = 10s;
        settings_.max_attempts = 3;
        settings_.lease = 60s;
        UseSettings(settings_);
        ehr_.Put(kPatient);
        ehr_.Put(kEncounter);
    }
    ~WorkerTest() override {
        worker_.reset();
        store_->Close();
    }

    // A worker with these settings in place of the current one.
    void UseSettings(const WorkerSettings& settings) {
        settings_ = settings;
        worker_ = std::make_unique<Worker>(
            io_.get_executor(), settings_, *store_, ehr_,
            std::shared_ptr<const rules::RuleSet>(&rules::testing::DefaultPack(),
                                                  [](const rules::RuleSet*) {}),
            metrics_, *audit_, [this] { return now_; });
    }

    std::int64_t Enqueue(NewJob job) {
        return test_support::ValueOf(store_->Enqueue(std::move(job))).job_id;
    }

    // One lease-and-run; whether a job was due.
    bool RunOnce() {
        auto done = asio::co_spawn(io_, worker_->RunOnce(), asio::use_future);
        io_.restart();
        io_.run();
        return done.get();
    }

    Job Get(std::int64_t id) { return test_support::ValueOf(store_->Get(id)); }

    static HttpResponse Answer(unsigned status,
                               std::vector<std::pair<std::string, std::string>> headers = {}) {
        HttpResponse response;
        response.status = status;
        response.body = R"({"resourceType":"OperationOutcome","issue":[]})";
        response.headers = std::move(headers);
        return response;
    }

    test_support::TempDirectory dir_;
    TimePoint now_ = std::chrono::floor<std::chrono::milliseconds>(
        std::chrono::sys_days(std::chrono::year{2026} / 11 / 24) + 12h);
    std::unique_ptr<JobStore> store_;
    std::unique_ptr<AuditLog> audit_;
    WorkerSettings settings_;
    Metrics metrics_;
    asio::io_context io_;
    testing::InMemoryEhr ehr_;
    std::unique_ptr<Worker> worker_;
};

TEST_F(WorkerTest, AnAssessmentIsWrittenOnceAndTheJobIsDone) {
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e1"));
    ASSERT_TRUE(RunOnce());
    const Job job = Get(id);
    EXPECT_EQ(job.state, JobState::kDone) << job.last_error;
    EXPECT_EQ(ehr_.transactions.size(), 1u);
    EXPECT_EQ(ehr_.CarePlans(), 1u);
    EXPECT_NE(job.outcome.find("Encounter/e1: CarePlan e1:careplan created"), std::string::npos)
        << job.outcome;
    EXPECT_FALSE(RunOnce());  // nothing left
}

TEST_F(WorkerTest, ATransientAnswerIsRetriedNoEarlierThanTheEhrsRetryAfter) {
    ehr_.Script("GET Encounter/e1", Answer(503, {{"retry-after", "120"}}));
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e1"));
    ASSERT_TRUE(RunOnce());
    Job job = Get(id);
    EXPECT_EQ(job.state, JobState::kQueued);
    EXPECT_NE(job.last_error.find("answered 503"), std::string::npos) << job.last_error;
    // Retry-After (120 s) wins over the worker's own backoff (at most 10 s here).
    EXPECT_EQ(job.next_attempt_at, now_ + 120s);

    now_ += 119s;
    EXPECT_FALSE(RunOnce());
    now_ += 1s;
    ASSERT_TRUE(RunOnce());
    EXPECT_EQ(Get(id).state, JobState::kDone);
    EXPECT_EQ(ehr_.CarePlans(), 1u);
}

TEST_F(WorkerTest, ARefusalIsDeadLetteredWithTheRequestAndTheEhrsOutcome) {
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/missing"));
    ASSERT_TRUE(RunOnce());
    const Job job = Get(id);
    EXPECT_EQ(job.state, JobState::kDead);
    EXPECT_NE(job.last_error.find("GET Encounter/missing answered 404"), std::string::npos)
        << job.last_error;
    EXPECT_NE(job.outcome.find("OperationOutcome"), std::string::npos);
    EXPECT_TRUE(ehr_.transactions.empty());
}

TEST_F(WorkerTest, AnEncounterWithoutAPatientIsDeadLetteredWithItsPath) {
    ehr_.Put(R"({"resourceType":"Encounter","id":"e2","status":"finished",
      "class":{"code":"AMB"}})");
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e2"));
    ASSERT_TRUE(RunOnce());
    const Job job = Get(id);
    EXPECT_EQ(job.state, JobState::kDead);
    EXPECT_NE(job.last_error.find("Encounter.subject"), std::string::npos) << job.last_error;
}

TEST_F(WorkerTest, TransientFailuresEndInTheDeadLetterQueueAfterMaxAttempts) {
    for (int i = 0; i < 3; ++i) ehr_.Script("GET Encounter/e1", Answer(500));
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e1"));
    for (int attempt = 1; attempt <= 3; ++attempt) {
        ASSERT_TRUE(RunOnce()) << attempt;
        now_ += 1h;
    }
    const Job job = Get(id);
    EXPECT_EQ(job.state, JobState::kDead);
    EXPECT_EQ(job.attempts, 3);
    EXPECT_NE(job.last_error.find("gave up after 3 attempts"), std::string::npos) << job.last_error;
}

// Issue 10: with 8 attempts from 1 s doubling, a 90 s outage dead-lettered every job. With the
// defaults a job is retried for its maximum age, however many attempts that takes.
TEST_F(WorkerTest, AnOutageOfHoursEndsWithTheJobDoneNotDead) {
    UseSettings(WorkerSettings{});  // the shipped retry policy
    const auto start = now_;
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e1"));
    int attempts = 0;
    // The EHR is down for six hours: every attempt meets a 503.
    ehr_.outage = Answer(503);
    while (now_ - start < 6h) {
        if (RunOnce()) ++attempts;
        ASSERT_EQ(Get(id).state, JobState::kQueued) << "after " << attempts << " attempts";
        now_ += 1min;
    }
    EXPECT_GT(attempts, 60);  // backing off to at most 5 min: more than ten attempts an hour
    ehr_.outage.reset();      // the EHR is back
    now_ += settings_.backoff_max;
    ASSERT_TRUE(RunOnce());
    EXPECT_EQ(Get(id).state, JobState::kDone);
    EXPECT_EQ(ehr_.CarePlans(), 1u);
}

// Issue 10, "outages lose nothing": the EHR refuses connections for hours. With the default
// policy the job is retried throughout, each retry counted under the reason it met, and the
// EHR holds exactly one CarePlan once it is back.
TEST_F(WorkerTest, AnUnreachableEhrIsRetriedForHoursAndEachRetryCountedAsConnect) {
    UseSettings(WorkerSettings{});  // the shipped retry policy
    const auto start = now_;
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e1"));
    ehr_.unreachable = Error::kConnectionFailed;
    std::uint64_t attempts = 0;
    while (now_ - start < 3h) {
        if (RunOnce()) ++attempts;
        const Job job = Get(id);
        ASSERT_EQ(job.state, JobState::kQueued) << "after " << attempts << " attempts";
        ASSERT_LE(job.next_attempt_at - now_, settings_.backoff_max);
        now_ += 30s;
    }
    EXPECT_GT(attempts, 30u);
    const auto connect = static_cast<std::size_t>(FailureReason::kConnect);
    EXPECT_EQ(metrics_.jobs_retried[connect], attempts);
    EXPECT_EQ(metrics_.JobsRetried(), attempts);
    EXPECT_EQ(metrics_.jobs_dead, 0u);

    ehr_.unreachable.reset();
    ehr_.outage = Answer(502);  // half back: a gateway before the EHR answers first
    now_ += settings_.backoff_max;
    ASSERT_TRUE(RunOnce());
    EXPECT_EQ(metrics_.jobs_retried[static_cast<std::size_t>(FailureReason::kHttp5xx)], 1u);

    ehr_.outage.reset();
    now_ += settings_.backoff_max;
    ASSERT_TRUE(RunOnce());
    EXPECT_EQ(Get(id).state, JobState::kDone);
    EXPECT_EQ(ehr_.CarePlans(), 1u);
}

// The other side of the policy: a write the EHR refuses as invalid is not an outage, and waits
// for no one.
TEST_F(WorkerTest, ATransactionRefusedAsInvalidIsDeadLetteredAtOnceWithTheEhrsOutcome) {
    int posts_to_base = 0;
    ehr_.on_request = [&](const std::string& request) {
        // The first POST to the base is the batch that reads the record; the second the write.
        if (request == "POST " && ++posts_to_base == 2) ehr_.Script("POST ", Answer(422));
    };
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e1"));
    ASSERT_TRUE(RunOnce());
    const Job job = Get(id);
    EXPECT_EQ(job.state, JobState::kDead);
    EXPECT_EQ(job.attempts, 1);
    EXPECT_NE(job.last_error.find("answered 422"), std::string::npos) << job.last_error;
    EXPECT_NE(job.outcome.find("OperationOutcome"), std::string::npos);
    EXPECT_EQ(metrics_.JobsRetried(), 0u);
    EXPECT_EQ(ehr_.CarePlans(), 0u);
}

// A slow EHR: each request takes 25 s of a 60 s lease, and another replica's maintenance runs
// before every answer. The worker renews the lease before each write, so the job is not taken
// over while it runs; without the renewal it was requeued before its transaction and its
// outcome fenced.
TEST_F(WorkerTest, ALeaseIsRenewedSoASlowJobIsNotTakenOverWhileItRuns) {
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e1"));
    std::size_t requeued = 0;
    ehr_.on_request = [&](const std::string&) {
        now_ += 25s;
        requeued += test_support::ValueOf(store_->RequeueExpired(now_));
    };
    ASSERT_TRUE(RunOnce());
    const Job job = Get(id);
    EXPECT_EQ(requeued, 0u);
    EXPECT_EQ(job.state, JobState::kDone) << job.last_error;
    EXPECT_EQ(job.attempts, 1);
    EXPECT_EQ(ehr_.CarePlans(), 1u);
}

TEST_F(WorkerTest, AJobPastItsMaximumAgeIsDeadLettered) {
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e1"));
    now_ += settings_.max_age + 1s;
    ehr_.Script("GET Encounter/e1", Answer(503));
    ASSERT_TRUE(RunOnce());
    const Job job = Get(id);
    EXPECT_EQ(job.state, JobState::kDead);
    EXPECT_NE(job.last_error.find("older than the maximum age"), std::string::npos)
        << job.last_error;
}

// An attempt that outlived its lease must not overwrite the attempt that took the job over.
TEST_F(WorkerTest, AnAttemptWhoseLeaseRanOutCannotRecordItsOutcome) {
    const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", 1, "Encounter/e1"));
    bool taken_over = false;
    ehr_.on_request = [&](const std::string& request) {
        if (taken_over || request != "GET Encounter/e1") return;
        taken_over = true;
        // The first attempt stalls past its lease; the job is requeued and leased again.
        now_ += settings_.lease + 1s;
        EXPECT_EQ(test_support::ValueOf(store_->RequeueExpired(now_)), 1u);
        auto second = test_support::ValueOf(store_->Lease(now_, 60s, 1));
        ASSERT_EQ(second.size(), 1u);
        EXPECT_EQ(second[0].attempts, 2);
    };
    ASSERT_TRUE(RunOnce());
    const Job job = Get(id);
    EXPECT_EQ(job.state, JobState::kRunning);  // still the second attempt's
    EXPECT_EQ(job.attempts, 2);
}

TEST_F(WorkerTest, AFailedResponseDeliveryIsAJobOfItsOwn) {
    ehr_.Script("POST https://ehr.example/messaging", Answer(400));
    const MessageRecord message{"msg-1", "hdr-1", R"({"resourceType":"Bundle"})"};
    const auto id = Enqueue(MessageJob(message, "Encounter/e1", "https://ehr.example/messaging"));
    ASSERT_TRUE(RunOnce());
    EXPECT_EQ(Get(id).state, JobState::kDone);
    ASSERT_TRUE(RunOnce());  // the delivery
    auto jobs = test_support::ValueOf(store_->List({}));
    ASSERT_EQ(jobs.size(), 2u);
    for (const Job& job : jobs) {
        const JobState expected = job.kind == kJobRespond ? JobState::kDead : JobState::kDone;
        EXPECT_EQ(job.state, expected) << job.kind;
    }
    EXPECT_EQ(ehr_.CarePlans(), 1u);
}

}  // namespace
}  // namespace microcare::adapter

namespace microcare::adapter {
namespace {

// A resource's field, read from its JSON.
std::string FieldOf(const std::string& json, std::string_view field) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(json, issues);
    return std::string(doc->Root()[field].String());
}

std::vector<std::string> Statuses(const std::vector<std::string>& resources) {
    std::vector<std::string> statuses;
    for (const std::string& r : resources) statuses.push_back(FieldOf(r, "status"));
    std::sort(statuses.begin(), statuses.end());
    return statuses;
}

class WorkerRevisionTest : public WorkerTest {
protected:
    JobState Assess(int event) {
        const auto id = Enqueue(SubscriptionEventJob("Subscription/s1", event, "Encounter/e1"));
        EXPECT_TRUE(RunOnce());
        last_ = Get(id);
        return last_.state;
    }
    Job last_;
};

TEST_F(WorkerRevisionTest, AReassessmentWithNothingChangedWritesNothing) {
    ehr_.Put(kIsotretinoin);
    ASSERT_EQ(Assess(1), JobState::kDone) << last_.last_error;
    ASSERT_EQ(ehr_.transactions.size(), 1u);
    ASSERT_EQ(Assess(2), JobState::kDone) << last_.last_error;
    EXPECT_EQ(ehr_.transactions.size(), 1u);
    EXPECT_NE(last_.outcome.find("unchanged, nothing written"), std::string::npos) << last_.outcome;
    EXPECT_EQ(ehr_.CarePlans(), 1u);
}

// Issue 6: what MicroCare wrote before was read with three searches of their own after the
// record's batch; it now rides in that batch, so a re-assessment that finds nothing to change
// costs the EHR two requests: the Encounter and the batch.
TEST_F(WorkerRevisionTest, WhatWasWrittenBeforeIsReadInTheRecordsBatch) {
    ehr_.Put(kIsotretinoin);
    ASSERT_EQ(Assess(1), JobState::kDone) << last_.last_error;
    ehr_.requests.clear();
    ASSERT_EQ(Assess(2), JobState::kDone) << last_.last_error;
    EXPECT_NE(last_.outcome.find("unchanged, nothing written"), std::string::npos) << last_.outcome;
    EXPECT_EQ(ehr_.requests, (std::vector<std::string>{"GET Encounter/e1", "POST "}));
}

// An EHR without batches: the record is read search by search, and so is what MicroCare wrote,
// which the re-assessment still finds (nothing is written twice).
TEST_F(WorkerRevisionTest, WithoutBatchesWhatWasWrittenBeforeIsReadSearchBySearch) {
    ehr_.Put(kIsotretinoin);
    ASSERT_EQ(Assess(1), JobState::kDone) << last_.last_error;
    ehr_.requests.clear();
    ehr_.Script("POST ", Answer(405));
    ASSERT_EQ(Assess(2), JobState::kDone) << last_.last_error;
    EXPECT_EQ(ehr_.transactions.size(), 1u);
    EXPECT_EQ(
        std::count_if(ehr_.requests.begin(), ehr_.requests.end(),
                      [](const std::string& r) { return r.starts_with("GET Task?identifier="); }),
        1);
    EXPECT_NE(last_.outcome.find("unchanged, nothing written"), std::string::npos) << last_.outcome;
}

TEST_F(WorkerRevisionTest, AReassessmentRevisesInPlaceAndRetiresWhatNoLongerHolds) {
    ehr_.Put(kIsotretinoin);
    ASSERT_EQ(Assess(1), JobState::kDone) << last_.last_error;
    ASSERT_EQ(ehr_.Stored("DetectedIssue").size(), 1u);
    ASSERT_EQ(ehr_.Stored("Task").size(), 1u);
    const std::string plan_id = FieldOf(ehr_.Stored("CarePlan")[0], "id");

    // The prescription was entered on the wrong patient and removed: the finding goes.
    ehr_.Remove("MedicationRequest/mr1");
    ASSERT_EQ(Assess(2), JobState::kDone) << last_.last_error;
    EXPECT_EQ(ehr_.transactions.size(), 2u);
    EXPECT_NE(last_.outcome.find("retired"), std::string::npos) << last_.outcome;
    EXPECT_EQ(ehr_.CarePlans(), 1u);
    EXPECT_EQ(FieldOf(ehr_.Stored("CarePlan")[0], "id"), plan_id);
    EXPECT_EQ(Statuses(ehr_.Stored("DetectedIssue")), std::vector<std::string>{"cancelled"});
    EXPECT_EQ(Statuses(ehr_.Stored("Task")), std::vector<std::string>{"cancelled"});
    // The second transaction writes only the difference, each update against its version.
    EXPECT_NE(ehr_.transactions[1].find("\"ifMatch\":\"W/\\\"1\\\"\""), std::string::npos)
        << ehr_.transactions[1];
    EXPECT_EQ(ehr_.transactions[1].find("\"POST\""), std::string::npos);

    // Found again: the same DetectedIssue and Task are reinstated, nothing is duplicated.
    ehr_.Put(kIsotretinoin);
    ASSERT_EQ(Assess(3), JobState::kDone) << last_.last_error;
    EXPECT_EQ(Statuses(ehr_.Stored("DetectedIssue")), std::vector<std::string>{"final"});
    EXPECT_EQ(Statuses(ehr_.Stored("Task")), std::vector<std::string>{"requested"});
    EXPECT_EQ(ehr_.CarePlans(), 1u);
}

// audit.fhirAuditEvents: a batch of AuditEvents right after each transaction.
class WorkerAuditEventTest : public WorkerRevisionTest {
protected:
    WorkerAuditEventTest() {
        worker_->PostAuditEvents("MicroCare test", "https://ehr.example/fhir");
    }

    // "C CarePlan/w1/_history/1", ... for each AuditEvent on the EHR, sorted.
    std::vector<std::string> Events() const {
        std::vector<std::string> events;
        for (const std::string& json : ehr_.Stored("AuditEvent")) {
            fhir::IssueList issues;
            auto doc = fhir::JsonDocument::Parse(json, issues);
            events.push_back(std::string(doc->Root()["action"].String()) + " " +
                             std::string(doc->Root()["entity"][0]["what"]["reference"].String()));
        }
        std::sort(events.begin(), events.end());
        return events;
    }
    // What they should be when every version of what MicroCare wrote (all versions are its
    // own here) was recorded once: its first version created, each later one updated.
    std::vector<std::string> EveryVersion() const {
        std::vector<std::string> versions;
        for (const char* type : {"CarePlan", "DetectedIssue", "Task"}) {
            for (const std::string& json : ehr_.Stored(type)) {
                fhir::IssueList issues;
                auto doc = fhir::JsonDocument::Parse(json, issues);
                const std::string at = std::string(type) + "/" +
                                       std::string(doc->Root()["id"].String()) + "/_history/";
                const int last = std::stoi(std::string(doc->Root()["meta"]["versionId"].String()));
                for (int v = 1; v <= last; ++v) {
                    versions.push_back((v == 1 ? "C " : "U ") + at + std::to_string(v));
                }
            }
        }
        std::sort(versions.begin(), versions.end());
        return versions;
    }
};

TEST_F(WorkerAuditEventTest, EachVersionWrittenIsRecordedOnceRightAfterTheTransaction) {
    ehr_.Put(kIsotretinoin);
    ASSERT_EQ(Assess(1), JobState::kDone) << last_.last_error;
    EXPECT_EQ(Events(), EveryVersion());
    ASSERT_EQ(Events().size(), 3u);  // CarePlan, DetectedIssue, Task: created
    // Nothing changed, nothing written: nothing more recorded.
    ASSERT_EQ(Assess(2), JobState::kDone) << last_.last_error;
    EXPECT_EQ(Events().size(), 3u);
    // The finding is retired: what is updated is recorded as updated, once.
    ehr_.Remove("MedicationRequest/mr1");
    ASSERT_EQ(Assess(3), JobState::kDone) << last_.last_error;
    EXPECT_EQ(Events(), EveryVersion());
    EXPECT_GT(Events().size(), 4u);  // the DetectedIssue and the Task at least
}

TEST_F(WorkerAuditEventTest, ARetryRecordsWhatAnEarlierAttemptWroteButCouldNotRecord) {
    ehr_.Put(kIsotretinoin);
    // The third POST of the job (record batch, transaction, then the AuditEvents) fails.
    int posts = 0;
    ehr_.on_request = [&](const std::string& request) {
        if (request.starts_with("POST ") && ++posts == 3) ehr_.Script("POST ", Answer(503));
    };
    ASSERT_EQ(Assess(1), JobState::kQueued);
    EXPECT_EQ(ehr_.transactions.size(), 1u);
    EXPECT_TRUE(Events().empty());
    ehr_.on_request = nullptr;
    now_ += 1min;
    ASSERT_TRUE(RunOnce());  // the retry: nothing to write, what the reading shows is recorded
    EXPECT_EQ(Get(last_.id).state, JobState::kDone) << Get(last_.id).last_error;
    EXPECT_EQ(ehr_.transactions.size(), 1u);
    EXPECT_EQ(Events(), EveryVersion());
    ASSERT_EQ(Events().size(), 3u);
    // A fresh trigger that changes nothing records nothing; posted again, nothing doubles.
    ASSERT_EQ(Assess(2), JobState::kDone) << last_.last_error;
    EXPECT_EQ(Events().size(), 3u);
}

TEST_F(WorkerRevisionTest, ARivalWriteBetweenReadingAndWritingIsRevisedAgainNotDuplicated) {
    ASSERT_EQ(Assess(1), JobState::kDone) << last_.last_error;
    ehr_.Put(kIsotretinoin);
    // Another re-assessment of the encounter, from the same reading, lands first.
    ehr_.on_transaction = [this](const std::string& body) {
        ASSERT_EQ(ehr_.Transact(body).status, 200u);
    };
    ASSERT_EQ(Assess(2), JobState::kDone) << last_.last_error;
    // Ours was refused on If-Match (412), read again and found nothing left to write.
    EXPECT_NE(last_.outcome.find("unchanged, nothing written"), std::string::npos) << last_.outcome;
    EXPECT_EQ(ehr_.CarePlans(), 1u);
    EXPECT_EQ(ehr_.Stored("DetectedIssue").size(), 1u);
    EXPECT_EQ(ehr_.Stored("Task").size(), 1u);
    EXPECT_EQ(FieldOf(ehr_.Stored("CarePlan")[0], "id"), "w1");
}

TEST_F(WorkerRevisionTest, TwoReassessmentsRacingEndInOneConsistentResult) {
    ASSERT_EQ(Assess(1), JobState::kDone) << last_.last_error;
    ASSERT_EQ(ehr_.transactions.size(), 1u);
    // One store runs one job of an encounter at a time; two MicroCare instances (or an
    // attempt whose lease ran out and its successor) do not share one. A second instance with
    // its own store and trail re-assesses the same encounter against the same EHR.
    StoreOptions options;
    options.synchronous_full = false;
    options.now = [this] { return now_; };
    auto other_store = test_support::ValueOf(JobStore::Open(dir_.File("other.db"), options));
    auto other_audit = test_support::ValueOf(AuditLog::Open(dir_.File("other-audit.log")));
    Metrics other_metrics;
    auto other =
        std::make_unique<Worker>(io_.get_executor(), settings_, *other_store, ehr_,
                                 std::shared_ptr<const rules::RuleSet>(
                                     &rules::testing::DefaultPack(), [](const rules::RuleSet*) {}),
                                 other_metrics, *other_audit, [this] { return now_; });

    // The record changes and both re-assess side by side: neither transaction is applied
    // before both are posted, so both revise from the same reading.
    ehr_.Put(kIsotretinoin);
    const auto mine = Enqueue(SubscriptionEventJob("Subscription/s1", 2, "Encounter/e1"));
    const auto theirs = test_support::ValueOf(other_store->Enqueue(SubscriptionEventJob(
                                                  "Subscription/s1", 2, "Encounter/e1")))
                            .job_id;
    ehr_.gather_transactions = 2;
    auto a = asio::co_spawn(io_, worker_->RunOnce(), asio::use_future);
    auto b = asio::co_spawn(io_, other->RunOnce(), asio::use_future);
    io_.restart();
    io_.run();
    ASSERT_TRUE(a.get());
    ASSERT_TRUE(b.get());
    const Job one = Get(mine);
    const Job two = test_support::ValueOf(other_store->Get(theirs));
    other.reset();
    other_store->Close();
    ASSERT_EQ(one.state, JobState::kDone) << one.last_error;
    ASSERT_EQ(two.state, JobState::kDone) << two.last_error;
    // Both posted; the CarePlan's If-Match let one land (412 for the other, which read again
    // and found nothing left to write).
    EXPECT_EQ(ehr_.transactions.size(), 3u);
    const bool one_wrote = one.outcome.find("nothing written") == std::string::npos;
    const bool two_wrote = two.outcome.find("nothing written") == std::string::npos;
    EXPECT_NE(one_wrote, two_wrote) << one.outcome << "\n" << two.outcome;
    EXPECT_EQ(ehr_.CarePlans(), 1u);
    EXPECT_EQ(Statuses(ehr_.Stored("CarePlan")), std::vector<std::string>{"active"});
    EXPECT_EQ(Statuses(ehr_.Stored("DetectedIssue")), std::vector<std::string>{"final"});
    EXPECT_EQ(Statuses(ehr_.Stored("Task")), std::vector<std::string>{"requested"});
    EXPECT_NE(ehr_.Stored("CarePlan")[0].find("\"versionId\":\"2\""), std::string::npos)
        << ehr_.Stored("CarePlan")[0];
}

TEST_F(WorkerRevisionTest, TheAuditRecordsWhatBecameOfEachResource) {
    ehr_.Put(kIsotretinoin);
    ASSERT_EQ(Assess(1), JobState::kDone) << last_.last_error;
    ehr_.Remove("MedicationRequest/mr1");
    ASSERT_EQ(Assess(2), JobState::kDone) << last_.last_error;
    audit_.reset();  // flushed and closed
    std::ifstream in(dir_.File("audit.log"));
    std::string trail((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(trail.find("DetectedIssue e1:issue:"), std::string::npos);
    EXPECT_NE(trail.find(" created"), std::string::npos);
    EXPECT_NE(trail.find(" retired"), std::string::npos);
}

// Issue 12, pre-visit: a booked microneedling appointment of a patient on isotretinoin gets a
// `high` DetectedIssue and a Task due at its start, with no CarePlan; moving it revises them
// in place; cancelling it cancels the Task.
class WorkerScreeningTest : public WorkerRevisionTest {
protected:
    static std::string Appointment(const std::string& start, const std::string& status) {
        return R"({"resourceType":"Appointment","id":"a1","status":")" + status +
               R"(","serviceType":[{"text":"Microneedling"}],"start":")" + start +
               R"(","participant":[{"actor":{"reference":"Patient/p1"},"status":"accepted"}]})";
    }
    JobState Screen(const std::string& version) {
        const auto id = Enqueue(ScreenJob("Appointment/a1", version));
        EXPECT_TRUE(RunOnce());
        last_ = Get(id);
        return last_.state;
    }
    std::string Task() {
        const auto tasks = ehr_.Stored("Task");
        EXPECT_EQ(tasks.size(), 1u);
        return tasks.empty() ? std::string() : tasks[0];
    }
};

TEST_F(WorkerScreeningTest, ABookedAppointmentGetsAHighIssueAndATaskDueAtItsStart) {
    ehr_.Put(kIsotretinoin);
    ehr_.Put(Appointment("2026-11-28T09:00:00Z", "booked"));
    ASSERT_EQ(Screen("1"), JobState::kDone) << last_.last_error;
    EXPECT_EQ(ehr_.CarePlans(), 0u);  // no aftercare before the treatment
    const auto issues = ehr_.Stored("DetectedIssue");
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_EQ(FieldOf(issues[0], "severity"), "high");
    EXPECT_NE(issues[0].find("Windows are measured from Appointment.start 2026-11-28T09:00:00"),
              std::string::npos)
        << issues[0];
    const std::string task = Task();
    EXPECT_NE(task.find(R"("focus":{"reference":"Appointment/a1"})"), std::string::npos) << task;
    EXPECT_NE(task.find(R"("restriction":{"period":{"end":"2026-11-28T09:00:00Z"}})"),
              std::string::npos)
        << task;
    EXPECT_EQ(FieldOf(task, "priority"), "urgent");
    EXPECT_NE(last_.outcome.find("Appointment/a1: DetectedIssue appointment-a1:issue:"),
              std::string::npos)
        << last_.outcome;

    // The same screening again (the daily re-screening): nothing to write.
    ASSERT_EQ(Screen("rescreen@1"), JobState::kDone) << last_.last_error;
    EXPECT_EQ(ehr_.transactions.size(), 1u);
}

TEST_F(WorkerScreeningTest, MovingTheAppointmentRevisesAndCancellingItCancelsTheTask) {
    ehr_.Put(kIsotretinoin);
    ehr_.Put(Appointment("2026-11-28T09:00:00Z", "booked"));
    ASSERT_EQ(Screen("1"), JobState::kDone) << last_.last_error;
    const std::string task_id = FieldOf(Task(), "id");

    ehr_.Put(Appointment("2026-12-02T15:30:00Z", "booked"));
    ASSERT_EQ(Screen("2"), JobState::kDone) << last_.last_error;
    EXPECT_EQ(FieldOf(Task(), "id"), task_id);
    EXPECT_NE(Task().find(R"("end":"2026-12-02T15:30:00Z")"), std::string::npos) << Task();
    EXPECT_EQ(ehr_.Stored("DetectedIssue").size(), 1u);
    EXPECT_EQ(ehr_.transactions[1].find("\"POST\""), std::string::npos)
        << "revised in place: " << ehr_.transactions[1];

    ehr_.Put(Appointment("2026-12-02T15:30:00Z", "cancelled"));
    ASSERT_EQ(Screen("3"), JobState::kDone) << last_.last_error;
    EXPECT_EQ(FieldOf(Task(), "status"), "cancelled");
    EXPECT_NE(Task().find("the appointment is cancelled"), std::string::npos) << Task();
    EXPECT_EQ(Statuses(ehr_.Stored("DetectedIssue")), std::vector<std::string>{"cancelled"});
    EXPECT_EQ(ehr_.CarePlans(), 0u);
    // The withdrawal is in the trail, before what it retired.
    std::ifstream trail(dir_.File("audit.log"));
    const std::string text((std::istreambuf_iterator<char>(trail)), {});
    const auto withdrawn = text.find(R"("screening":"withdrawn")");
    EXPECT_NE(withdrawn, std::string::npos) << text;
    EXPECT_LT(withdrawn, text.rfind(R"("event":"revision")"));
}

// A booking message (MessageHeader.focus an Appointment) takes the same path.
TEST_F(WorkerScreeningTest, ABookingMessageIsAScreening) {
    ehr_.Put(kIsotretinoin);
    ehr_.Put(Appointment("2026-11-28T09:00:00Z", "booked"));
    const NewJob job = MessageJob(MessageRecord{"b1", "h1", "{}"}, "Appointment/a1", "");
    EXPECT_EQ(job.kind, kJobScreen);
    const auto id = Enqueue(job);
    ASSERT_TRUE(RunOnce());
    EXPECT_EQ(Get(id).state, JobState::kDone) << Get(id).last_error;
    EXPECT_EQ(ehr_.Stored("DetectedIssue").size(), 1u);
    EXPECT_NE(Task().find("Appointment/a1"), std::string::npos);
}

}  // namespace
}  // namespace microcare::adapter
