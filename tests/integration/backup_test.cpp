// Issue 10: "A backup taken while triggers arrive restores into a service that finishes every job
// in it, and whose audit trail verifies." The real `microcare serve` takes triggers while
// `microcare backup` runs beside it; the backup is restored into a fresh location, a service
// started there finishes every job the backup holds with exactly one CarePlan per encounter, and
// `microcare audit verify` passes on the restored trail.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "adapter/file_io.hpp"
#include "adapter/store/job_store.hpp"
#include "serve_process.hpp"
#include "service_harness.hpp"

namespace microcare::testing {
namespace {

namespace fs = std::filesystem;

// Runs the microcare binary with `args`; its exit code (output to the test's own stderr).
int RunMicrocare(std::vector<std::string> args) {
    const pid_t pid = fork();
    if (pid == 0) {
        std::vector<char*> argv{const_cast<char*>(MICROCARE_BINARY)};
        for (std::string& arg : args) argv.push_back(arg.data());
        argv.push_back(nullptr);
        execv(MICROCARE_BINARY, argv.data());
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// Every file of the trail in `dir` (rotated ones too), one after the other.
std::string TrailText(const fs::path& dir) {
    std::string text;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.starts_with("audit.log") && name.find("checkpoint") == std::string::npos &&
            !name.ends_with(".lock")) {
            text += adapter::ReadFile(entry.path().string()).value_or("");
        }
    }
    return text;
}

class BackupTest : public ::testing::Test {
protected:
    void SetUp() override {
        ehr_ = std::make_unique<FakeEhr>();
        ehr_->Load(ReadSource("config/examples/absolute-isotretinoin.json"));
        for (int i = 0; i < kEncounters; ++i) {
            ehr_->Put(
                MicroneedlingEncounter(Id(i), "pat-chloe-besson", "2026-11-20T10:00:00+01:00"));
        }
        dir_ = FreshDirectory("backup");
        std::ofstream(dir_ / "audit.key") << "6d6963726f636172652d6261636b75702d746573742d6b6579\n";
        live_ = Config("live");
        restored_ = Config("restored");
        fs::create_directories(dir_ / "live" / "rules");
        fs::copy_file(fs::path(MICROCARE_SOURCE_DIR) / "config/rules/microneedling.json",
                      dir_ / "live" / "rules" / "microneedling.json");
    }
    void TearDown() override {
        ehr_->Stop();
        fs::remove_all(dir_);
    }

    static std::string Id(int i) { return "enc-b" + std::to_string(i); }

    // A configuration whose files are all in dir_/<name>; the audit key is shared, as a clinic
    // keeps it apart from the backups and gives it to the restored service.
    std::string Config(const std::string& name) {
        fs::create_directories(dir_ / name);
        const std::string path = (dir_ / name / "microcare.json").string();
        std::ofstream(path) << R"({
          "server": {"listen": "127.0.0.1", "port": 0, "auth": {"bearerTokens": [")"
                            << kToken << R"("]}},
          "store": {"path": "./microcare.db"},
          "audit": {"path": "./audit.log", "keyFile": "../audit.key", "rotateBytes": 65536,
                    "checkpointEvery": 10},
          "worker": {"concurrency": 2, "leaseSeconds": 1, "backoffInitialMs": 20,
                     "backoffMaxMs": 200, "pollIntervalMs": 20},
          "ehr": {"baseUrl": ")"
                            << ehr_->BaseUrl() << R"(", "requestTimeoutMs": 5000},
          "rules": {"path": "./rules/microneedling.json"},
          "log": {"level": "info"}
        })";
        return path;
    }

    static std::string Url(const ServeProcess& p) {
        return "http://127.0.0.1:" + std::to_string(p.port()) + "/fhir/$process-message";
    }

    // Every job of the store at `path`, read without changing it.
    static std::vector<adapter::Job> Jobs(const std::string& path) {
        adapter::StoreOptions options;
        options.read_only = true;
        auto store = adapter::JobStore::Open(path, options);
        if (!store) return {};
        adapter::JobFilter all;
        all.limit = 100000;
        auto jobs = (*store)->List(all);
        (*store)->Close();
        return jobs ? *jobs : std::vector<adapter::Job>{};
    }

    static constexpr int kEncounters = 60;
    std::unique_ptr<FakeEhr> ehr_;
    fs::path dir_;
    std::string live_;
    std::string restored_;
};

TEST_F(BackupTest, ABackupTakenWhileTriggersArriveRestoresIntoAServiceThatFinishesEveryJob) {
    // Slow transactions: the backup finds jobs done, running and queued.
    ehr_->InjectFault("POST", "",
                      Fault::Delay(std::chrono::milliseconds(100)).OnlyIfBody("\"transaction\""),
                      1000);
    const std::string backup = (dir_ / "backup").string();
    std::atomic<int> sent{0};
    std::atomic<int> acknowledged_during_backup{0};
    std::atomic<bool> backing_up{false};
    {
        ServeProcess serve(live_);
        ASSERT_NE(serve.port(), 0) << "the service did not start";
        std::thread triggers([&] {
            for (int i = 0; i < kEncounters; ++i) {
                const Reply reply = PostJson(
                    Url(serve), MessageBundle("b-" + std::to_string(i), "h-" + std::to_string(i),
                                              "Encounter/" + Id(i)));
                if (reply.status == 200 && backing_up) ++acknowledged_during_backup;
                ++sent;
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            }
        });
        ASSERT_TRUE(WaitFor([&] { return sent >= 10; }));
        backing_up = true;
        const int backed_up = RunMicrocare({"backup", "--config", live_, backup});
        backing_up = false;
        triggers.join();
        EXPECT_EQ(backed_up, 0);
        // The backup is in the live trail, written by the service that holds it.
        EXPECT_TRUE(WaitFor([&] {
            return TrailText(dir_ / "live").find("\"event\":\"backup\"") != std::string::npos;
        }));
        serve.Signal(SIGTERM);
    }
    ASSERT_GT(acknowledged_during_backup, 0) << "no trigger arrived while the backup ran";

    const std::vector<adapter::Job> backed_up = Jobs(backup + "/store.db");
    ASSERT_FALSE(backed_up.empty());
    std::size_t unfinished = 0;
    for (const adapter::Job& job : backed_up) unfinished += job.state != adapter::JobState::kDone;
    ASSERT_GT(unfinished, 0u) << "every job was done before the backup: nothing left to prove";

    ASSERT_EQ(RunMicrocare({"restore", "--config", restored_, backup}), 0);
    ehr_->ClearFaults();
    {
        ServeProcess again(restored_);
        ASSERT_NE(again.port(), 0) << "the restored service did not start";
        const std::string store = (dir_ / "restored" / "microcare.db").string();
        EXPECT_TRUE(WaitFor(
            [&] {
                for (const adapter::Job& job : Jobs(store)) {
                    if (job.state != adapter::JobState::kDone) return false;
                }
                return true;
            },
            std::chrono::seconds(60)));
        again.Signal(SIGTERM);
    }
    const std::vector<adapter::Job> restored = Jobs((dir_ / "restored" / "microcare.db").string());
    EXPECT_EQ(restored.size(), backed_up.size());
    for (const adapter::Job& job : restored) {
        EXPECT_EQ(job.state, adapter::JobState::kDone) << job.id << " " << job.last_error;
        EXPECT_EQ(ehr_->Search("CarePlan", "encounter=" + job.encounter).size(), 1u)
            << job.encounter;
    }
    EXPECT_EQ(RunMicrocare({"audit", "verify", "--config", restored_}), 0);
    EXPECT_NE(TrailText(dir_ / "restored").find("\"event\":\"restore\""), std::string::npos);
}

}  // namespace
}  // namespace microcare::testing
