// The real `microcare serve` process, killed with SIGKILL while jobs are in flight and restarted
// on the same store: every trigger it acknowledged ends with exactly one CarePlan on the EHR.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "adapter/audit/audit_verify.hpp"
#include "fhir/json.hpp"
#include "serve_process.hpp"
#include "service_harness.hpp"

namespace microcare::testing {
namespace {

class CrashTest : public ::testing::Test {
protected:
    void SetUp() override {
        ehr_ = std::make_unique<FakeEhr>();
        ehr_->Load(ReadSource("config/examples/absolute-isotretinoin.json"));
        dir_ = FreshDirectory("crash");
        for (int i = 0; i < kEncounters; ++i) {
            ehr_->Put(MicroneedlingEncounter("enc-c" + std::to_string(i), "pat-chloe-besson",
                                             "2026-11-20T10:00:00+01:00"));
        }
        config_ = (dir_ / "microcare.json").string();
        std::ofstream(config_) << R"({
          "server": {"listen": "127.0.0.1", "port": 0, "auth": {"bearerTokens": [")"
                               << kToken << R"("]}},
          "store": {"path": ")" << (dir_ / "microcare.db").string()
                               << R"("},
          "audit": {"path": ")" << (dir_ / "audit.log").string()
                               << R"("},
          "worker": {"concurrency": 4, "leaseSeconds": 1, "backoffInitialMs": 20, "backoffMaxMs": 200,
                     "pollIntervalMs": 20, "maxAttempts": 20},
          "ehr": {"baseUrl": ")"
                               << ehr_->BaseUrl() << R"(", "requestTimeoutMs": 5000},
          "rules": {"path": ")" << MICROCARE_SOURCE_DIR
                               << R"(/config/rules/microneedling.json"},
          "log": {"level": "info"}
        })";
    }
    void TearDown() override {
        ehr_->Stop();
        std::filesystem::remove_all(dir_);
    }

    std::string Url(const ServeProcess& p) {
        return "http://127.0.0.1:" + std::to_string(p.port()) + "/fhir/$process-message";
    }

    bool EveryEncounterHasOneCarePlan(std::vector<int> encounters) {
        for (int i : encounters) {
            if (ehr_->Search("CarePlan", "encounter=Encounter/enc-c" + std::to_string(i)).size() !=
                1) {
                return false;
            }
        }
        return true;
    }

    std::size_t MostCarePlansOfOneEncounter() {
        std::size_t most = 0;
        for (int i = 0; i < kEncounters; ++i) {
            most = std::max(
                most,
                ehr_->Search("CarePlan", "encounter=Encounter/enc-c" + std::to_string(i)).size());
        }
        return most;
    }

    static constexpr int kEncounters = 24;
    std::unique_ptr<FakeEhr> ehr_;
    std::filesystem::path dir_;
    std::string config_;
};

TEST_F(CrashTest, KilledWithJobsInFlightEveryAcknowledgedTriggerLandsOnce) {
    // Slow transactions keep jobs in flight when the process dies.
    ehr_->InjectFault("POST", "",
                      Fault::Delay(std::chrono::milliseconds(150)).OnlyIfBody("\"transaction\""),
                      1000);
    std::vector<int> acknowledged;
    {
        ServeProcess serve(config_);
        ASSERT_NE(serve.port(), 0) << "the service did not start";
        for (int i = 0; i < kEncounters; ++i) {
            Reply reply = PostJson(
                Url(serve), MessageBundle("crash-" + std::to_string(i), "h-" + std::to_string(i),
                                          "Encounter/enc-c" + std::to_string(i)));
            if (reply.status == 200) acknowledged.push_back(i);
        }
        ASSERT_EQ(acknowledged.size(), static_cast<std::size_t>(kEncounters));
        // Some jobs are done, some in flight, some queued: kill it now.
        ASSERT_TRUE(WaitFor([&] { return ehr_->Count("CarePlan") >= 2; }));
        serve.Signal(SIGKILL);
    }
    ASSERT_LT(ehr_->Count("CarePlan"), static_cast<std::size_t>(kEncounters))
        << "too late to test anything";
    ServeProcess again(config_);
    ASSERT_NE(again.port(), 0);
    EXPECT_TRUE(WaitFor([&] { return EveryEncounterHasOneCarePlan(acknowledged); },
                        std::chrono::seconds(60)));
    EXPECT_EQ(MostCarePlansOfOneEncounter(), 1u);
    again.Signal(SIGTERM);
    // The trail survived the kill: a record cut in the middle was repaired at the restart.
    const adapter::AuditReport trail = adapter::VerifyTrail(adapter::TrailToVerify{
        (dir_ / "audit.log").string(), {}, (dir_ / "audit.log.checkpoint").string(), {}, {}});
    EXPECT_TRUE(trail.intact()) << (trail.problems.empty() ? "" : trail.problems[0].message);
    EXPECT_GT(trail.records, static_cast<std::uint64_t>(kEncounters));
}

TEST_F(CrashTest, KilledBetweenTheEhrsWriteAndItsOwnRecordNothingIsWrittenTwice) {
    // The check after the write is held up: the transaction has landed on the EHR, but the
    // job is not yet marked done when the process dies. The kill waits for the check to
    // arrive (its fault used up): killed as soon as the CarePlan lands, the process may not
    // have reached the check at all, and the fault would then wait for a check that the
    // re-run, finding nothing to write, has no reason to make.
    ehr_->InjectFault("GET", "CarePlan?identifier", Fault::Delay(std::chrono::seconds(3)), 1);
    {
        ServeProcess serve(config_);
        ASSERT_NE(serve.port(), 0);
        ASSERT_EQ(
            PostJson(Url(serve), MessageBundle("between-0", "hb-0", "Encounter/enc-c0")).status,
            200u);
        ASSERT_TRUE(WaitFor([&] { return ehr_->PendingFaults() == 0; }));
        ASSERT_EQ(ehr_->Count("CarePlan"), 1u);
        serve.Signal(SIGKILL);
    }
    ServeProcess again(config_);
    ASSERT_NE(again.port(), 0);
    // The lease runs out and the job runs again: it reads back what the first attempt wrote
    // (with the record, in its batch) and finds nothing left to write.
    auto count = [&](RequestKind kind, std::string_view prefix) {
        std::size_t n = 0;
        for (const ReceivedRequest& r : ehr_->Requests()) {
            n += r.kind == kind && (r.path + "?" + r.query).starts_with(prefix) &&
                 (kind != RequestKind::kTransaction ||
                  r.body.find("\"transaction\"") != std::string::npos);
        }
        return n;
    };
    auto record_reads = [&] {
        std::size_t n = 0;
        for (const ReceivedRequest& r : ehr_->Requests()) {
            n += r.kind == RequestKind::kTransaction &&
                 r.body.find("\"Task?identifier=") != std::string::npos;
        }
        return n;
    };
    ASSERT_TRUE(WaitFor([&] { return record_reads() >= 2; }, std::chrono::seconds(30)));
    // A stop finishes the work in flight: whatever the re-run was going to write is written.
    again.Signal(SIGTERM);
    EXPECT_EQ(count(RequestKind::kTransaction, ""), 1u);
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    EXPECT_EQ(ehr_->Count("DetectedIssue"), 1u);
    EXPECT_EQ(ehr_->Count("Task"), 1u);
}

}  // namespace
}  // namespace microcare::testing
