// The real `microcare serve` process, killed with SIGKILL while jobs are in flight and restarted
// on the same store: every trigger it acknowledged ends with exactly one CarePlan on the EHR.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include "adapter/audit/audit_verify.hpp"
#include "fhir/json.hpp"
#include "service_harness.hpp"

namespace microcare::testing {
namespace {

// A `microcare serve` child process; its port is read from its first log lines.
class ServeProcess {
public:
    explicit ServeProcess(const std::string& config_path) {
        int pipe_fds[2];
        if (pipe(pipe_fds) != 0) throw std::runtime_error("pipe");
        pid_ = fork();
        if (pid_ == 0) {
            dup2(pipe_fds[1], STDERR_FILENO);
            close(pipe_fds[0]);
            close(pipe_fds[1]);
            execl(MICROCARE_BINARY, MICROCARE_BINARY, "serve", "--config", config_path.c_str(),
                  static_cast<char*>(nullptr));
            _exit(127);
        }
        close(pipe_fds[1]);
        log_ = fdopen(pipe_fds[0], "r");
        char line[4096];
        while (fgets(line, sizeof line, log_) != nullptr) {
            std::string text(line);
            if (text.find("MicroCare is listening") == std::string::npos) continue;
            fhir::IssueList issues;
            auto doc = fhir::JsonDocument::Parse(text, issues);
            if (doc)
                port_ = static_cast<unsigned short>(
                    std::stoi(std::string(doc->Root()["port"].String())));
            break;
        }
        // Keep draining the log so that the child never blocks on a full pipe.
        drain_ = std::thread([this] {
            char buffer[4096];
            while (fgets(buffer, sizeof buffer, log_) != nullptr) {
            }
        });
    }
    ~ServeProcess() {
        if (pid_ > 0) Signal(SIGKILL);
        if (drain_.joinable()) drain_.join();
        if (log_ != nullptr) fclose(log_);
    }
    void Signal(int signal) {
        if (pid_ <= 0) return;
        kill(pid_, signal);
        int status = 0;
        waitpid(pid_, &status, 0);
        pid_ = -1;
    }
    unsigned short port() const { return port_; }

private:
    pid_t pid_ = -1;
    FILE* log_ = nullptr;
    std::thread drain_;
    unsigned short port_ = 0;
};

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
        (dir_ / "audit.log").string(), {}, (dir_ / "audit.log.checkpoint").string()});
    EXPECT_TRUE(trail.intact()) << (trail.problems.empty() ? "" : trail.problems[0].message);
    EXPECT_GT(trail.records, static_cast<std::uint64_t>(kEncounters));
}

TEST_F(CrashTest, KilledBetweenTheEhrsWriteAndItsOwnRecordNothingIsWrittenTwice) {
    // The check after the write is held up: the transaction has landed on the EHR, but the
    // job is not yet marked done when the process dies.
    ehr_->InjectFault("GET", "CarePlan?identifier", Fault::Delay(std::chrono::seconds(3)), 1);
    {
        ServeProcess serve(config_);
        ASSERT_NE(serve.port(), 0);
        ASSERT_EQ(
            PostJson(Url(serve), MessageBundle("between-0", "hb-0", "Encounter/enc-c0")).status,
            200u);
        ASSERT_TRUE(WaitFor([&] { return ehr_->Count("CarePlan") == 1; }));
        serve.Signal(SIGKILL);
    }
    ServeProcess again(config_);
    ASSERT_NE(again.port(), 0);
    // The lease runs out, the job runs again, and its conditional create finds the CarePlan.
    ASSERT_TRUE(WaitFor(
        [&] {
            std::size_t checks = 0;
            for (const ReceivedRequest& r : ehr_->Requests()) {
                checks += r.kind == RequestKind::kTransaction &&
                          r.body.find("\"transaction\"") != std::string::npos;
            }
            return checks >= 2;
        },
        std::chrono::seconds(30)));
    ASSERT_TRUE(WaitFor([&] { return ehr_->PendingFaults() == 0; }));
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    EXPECT_EQ(ehr_->Count("DetectedIssue"), 1u);
    EXPECT_EQ(ehr_->Count("Task"), 1u);
    again.Signal(SIGTERM);
}

}  // namespace
}  // namespace microcare::testing
