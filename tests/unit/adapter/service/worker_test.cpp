// The worker's decisions, without sockets or sleeps: an in-memory EHR, a set clock, a real
// store in a temporary directory. Each test drives one attempt at a time with RunOnce.
#include "adapter/service/worker.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>

#include "adapter/jobs/job_contract.hpp"
#include "tests/unit/adapter/service/in_memory_ehr.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"
#include "tests/unit/rules/source_files.hpp"

namespace microcare::adapter {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

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
        worker_ = std::make_unique<Worker>(
            io_.get_executor(), settings_, *store_, ehr_,
            std::shared_ptr<const rules::RuleSet>(&rules::testing::DefaultPack(),
                                                  [](const rules::RuleSet*) {}),
            metrics_, blocking_, *audit_, [this] { return now_; });
        ehr_.Put(kPatient);
        ehr_.Put(kEncounter);
    }
    ~WorkerTest() override {
        worker_.reset();
        blocking_.join();
        store_->Close();
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
    asio::thread_pool blocking_{1};
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
    EXPECT_NE(job.outcome.find("Encounter/e1: CarePlan written"), std::string::npos);
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
    settings_ = WorkerSettings{};
    worker_ =
        std::make_unique<Worker>(io_.get_executor(), settings_, *store_, ehr_,
                                 std::shared_ptr<const rules::RuleSet>(
                                     &rules::testing::DefaultPack(), [](const rules::RuleSet*) {}),
                                 metrics_, blocking_, *audit_, [this] { return now_; });
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
