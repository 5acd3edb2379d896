// Issue 10, "outages lose nothing": the EHR refuses connections for longer than ten minutes
// while triggers keep arriving, then comes back. The service reads a set clock for every time
// decision (job ages, retry times), so the outage lasts minutes of simulated time and seconds
// of real time; the worker's polling and the sockets stay real.
#include <gtest/gtest.h>

#include <atomic>
#include <sstream>

#include "adapter/service/service.hpp"
#include "adapter/store/job_store.hpp"
#include "fhir/json.hpp"
#include "service_harness.hpp"

namespace microcare::testing {
namespace {

using namespace std::chrono_literals;
using adapter::JobState;

constexpr int kEncounters = 4;

class OutageTest : public ::testing::Test {
protected:
    void SetUp() override {
        ehr_ = std::make_unique<FakeEhr>();
        ehr_->Load(ReadSource("config/examples/absolute-isotretinoin.json"));
        for (int i = 0; i < kEncounters; ++i) {
            ehr_->Put(MicroneedlingEncounter(Encounter(i).substr(10), "pat-chloe-besson",
                                             "2026-11-20T10:00:00+01:00"));
        }
        dir_ = FreshDirectory("outage");
    }
    void TearDown() override {
        if (service_) service_->Stop();
        service_.reset();
        ehr_->Stop();
        std::filesystem::remove_all(dir_);
    }

    static std::string Encounter(int i) { return "Encounter/enc-o" + std::to_string(i); }

    // The retry policy is the shipped one unless `adjust` changes it; only the polling is
    // quick, since it waits on the real clock.
    void Start(const std::function<void(adapter::WorkerSettings&)>& adjust = {}) {
        adapter::ServiceConfig config = TestConfig(ehr_->BaseUrl(), dir_);
        const adapter::WorkerSettings shipped;
        config.worker.max_attempts = shipped.max_attempts;
        config.worker.max_age = shipped.max_age;
        config.worker.backoff_initial = shipped.backoff_initial;
        config.worker.backoff_max = shipped.backoff_max;
        config.worker.lease = shipped.lease;
        if (adjust) adjust(config.worker);
        worker_ = config.worker;
        auto service = adapter::Service::Create(
            config, {}, adapter::ServiceSeams{.audit_file = {}, .now = [this] { return Now(); }});
        ASSERT_TRUE(service) << service.error().message();
        service_ = std::move(*service);
        service_->Start();
        root_ = "http://127.0.0.1:" + std::to_string(service_->port());
    }

    adapter::TimePoint Now() const { return adapter::TimePoint(millis_.load() * 1ms); }
    void Advance(std::chrono::milliseconds by) { millis_ += by.count(); }

    std::vector<adapter::Job> Jobs() {
        adapter::JobFilter filter;
        filter.limit = 1000;
        auto jobs = service_->store().List(filter);
        return jobs ? *jobs : std::vector<adapter::Job>{};
    }

    // Every job has had its attempt at the current time: it waits for a later one, or it has
    // ended.
    bool NothingDue() {
        const auto jobs = Jobs();
        for (const adapter::Job& job : jobs) {
            if (job.state == JobState::kRunning) return false;
            if (job.state == JobState::kQueued && job.next_attempt_at <= Now()) return false;
        }
        return !jobs.empty();
    }

    bool Settled(JobState state) {
        const auto jobs = Jobs();
        for (const adapter::Job& job : jobs) {
            if (job.state != state) return false;
        }
        return jobs.size() == kEncounters;
    }

    // The EHR down from the start: every trigger is acknowledged all the same.
    void TriggersDuringTheOutage() {
        ehr_->RefuseConnections();
        for (int i = 0; i < kEncounters; ++i) {
            const std::string id = "outage-" + std::to_string(i);
            Reply ack = PostJson(root_ + "/fhir/$process-message",
                                 MessageBundle(id, id + "-header", Encounter(i)));
            ASSERT_EQ(ack.status, 200u) << ack.error << ack.body;
        }
    }

    // Lives `length` of outage in steps, each step only once every job has met the outage.
    void Outage(std::chrono::minutes length) {
        const adapter::TimePoint end = Now() + length;
        while (Now() < end) {
            ASSERT_TRUE(WaitFor([this] { return NothingDue(); }))
                << "the jobs did not all meet the outage at +" << (Now() - start_) / 1s << " s";
            Advance(30s);
        }
    }

    Reply Get(const std::string& path) {
        return Send("GET", root_ + path, "", {{"Authorization", std::string("Bearer ") + kToken}});
    }

    std::string ReadyField(const Reply& ready, const char* field) {
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(ready.body, issues);
        return doc ? std::string(doc->Root()[field].String()) : "(not JSON: " + ready.body + ")";
    }

    // A sample's value on /metrics ("name" or "name{labels}"); -1 when absent.
    double Metric(const std::string& sample) {
        std::istringstream page(Get("/metrics").body);
        for (std::string line; std::getline(page, line);) {
            if (line.starts_with(sample + " ")) return std::stod(line.substr(sample.size() + 1));
        }
        return -1;
    }

    std::unique_ptr<FakeEhr> ehr_;
    std::unique_ptr<adapter::Service> service_;
    adapter::WorkerSettings worker_;
    std::filesystem::path dir_;
    std::string root_;
    // Simulated time starts at the real one, so the sample record's dates mean what they say.
    std::atomic<std::int64_t> millis_{adapter::SystemNow().time_since_epoch().count()};
    const adapter::TimePoint start_ = Now();
};

TEST_F(OutageTest, AnEhrDownForTwelveMinutesEndsWithOneCarePlanPerAcknowledgedTrigger) {
    Start();
    ASSERT_GE(worker_.max_age, 24h);  // the shipped policy: a day of retries
    ASSERT_LE(worker_.backoff_max, 5min);
    TriggersDuringTheOutage();
    Outage(12min);

    // Degraded, not unready: triggers are still taken.
    const Reply ready = Send("GET", root_ + "/readyz", "", {});
    EXPECT_EQ(ready.status, 200u);
    EXPECT_EQ(ReadyField(ready, "status"), "degraded") << ready.body;
    EXPECT_EQ(ReadyField(ready, "ehr"), "unreachable") << ready.body;
    EXPECT_EQ(Metric("microcare_ehr_up"), 0);
    EXPECT_GE(Metric("microcare_oldest_waiting_job_age_seconds"), 12 * 60);
    EXPECT_GE(Metric(R"(microcare_jobs_retried_total{reason="connect"})"), 4 * kEncounters);
    EXPECT_EQ(Metric("microcare_jobs_dead_total"), 0);
    for (const adapter::Job& job : Jobs()) EXPECT_EQ(job.state, JobState::kQueued) << job.id;
    EXPECT_EQ(ehr_->Count("CarePlan"), 0u);

    ehr_->AcceptConnections();
    // However far each job's backoff had gone, it is due within the cap.
    Advance(worker_.backoff_max + 1s);
    ASSERT_TRUE(WaitFor([this] { return Settled(JobState::kDone); }))
        << "jobs still waiting after the EHR came back";
    for (int i = 0; i < kEncounters; ++i) {
        EXPECT_EQ(ehr_->Search("CarePlan", "encounter=" + Encounter(i)).size(), 1u) << i;
    }
    EXPECT_EQ(ehr_->Count("CarePlan"), static_cast<std::size_t>(kEncounters));

    const Reply after = Send("GET", root_ + "/readyz", "", {});
    EXPECT_EQ(after.status, 200u);
    EXPECT_EQ(ReadyField(after, "status"), "ready") << after.body;
    EXPECT_EQ(ReadyField(after, "ehr"), "reachable") << after.body;
    EXPECT_FALSE(ReadyField(after, "ehrLastSuccess").empty()) << after.body;
    EXPECT_EQ(Metric("microcare_ehr_up"), 1);
    EXPECT_EQ(Metric("microcare_oldest_waiting_job_age_seconds"), 0);
    EXPECT_EQ(Metric("microcare_jobs_dead_total"), 0);
}

// The policy is the configuration's: with jobs given five minutes, the same outage ends them in
// the dead-letter queue with the reason, where an operator can retry them.
TEST_F(OutageTest, AShorterConfiguredMaximumAgeEndsTheRetriesWithTheReason) {
    Start([](adapter::WorkerSettings& worker) { worker.max_age = 5min; });
    TriggersDuringTheOutage();
    const adapter::TimePoint end = Now() + 12min;
    while (Now() < end && !Settled(JobState::kDead)) {
        ASSERT_TRUE(WaitFor([this] { return NothingDue(); }));
        Advance(30s);
    }
    ASSERT_TRUE(Settled(JobState::kDead));
    for (const adapter::Job& job : Jobs()) {
        EXPECT_NE(job.last_error.find("older than the maximum age"), std::string::npos)
            << job.last_error;
        EXPECT_GE(Now() - job.created_at, 5min);
    }
    EXPECT_EQ(Metric("microcare_jobs_dead_total"), kEncounters);
    EXPECT_EQ(ehr_->Count("CarePlan"), 0u);
}

}  // namespace
}  // namespace microcare::testing
