// `microcare status` from the files alone: the pack's identity, jobs by state with the oldest
// waiting one, dead letters and the audit trail's health, and an exit code that says whether
// something needs a look.
#include "adapter/status_command.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "adapter/audit/audit_log.hpp"
#include "adapter/store/job_store.hpp"

namespace microcare::adapter {
namespace {

namespace fs = std::filesystem;

class StatusCommandTest : public ::testing::Test {
protected:
    StatusCommandTest() {
        dir_ = fs::temp_directory_path() / ("microcare-status-" + std::to_string(getpid()));
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        config_ = (dir_ / "microcare.json").string();
        std::ofstream(config_) << R"({"server": {"auth": {"allowAnonymous": true}},
            "ehr": {"baseUrl": "http://127.0.0.1:9/fhir"},
            "store": {"path": ")"
                               << (dir_ / "db").string() << R"("}, "audit": {"path": ")"
                               << (dir_ / "audit.log").string() << R"("}, "rules": {"path": ")"
                               << MICROCARE_SOURCE_DIR << R"(/config/rules/microneedling.json"}})";
    }
    ~StatusCommandTest() override { fs::remove_all(dir_); }

    int Run(std::string& out) {
        std::ostringstream o;
        std::ostringstream e;
        const int code = RunStatus(config_, o, e);
        out = o.str() + e.str();
        return code;
    }

    fs::path dir_;
    std::string config_;
};

TEST_F(StatusCommandTest, AServiceThatNeverRanIsSaidSoAndNothingIsCreated) {
    std::string out;
    EXPECT_EQ(Run(out), 0) << out;
    EXPECT_NE(out.find("no store yet"), std::string::npos) << out;
    EXPECT_FALSE(fs::exists(dir_ / "db"));
}

TEST_F(StatusCommandTest, ReportsPackJobsAndTrailAndFlagsDeadLetters) {
    {
        auto store = std::move(*JobStore::Open((dir_ / "db").string()));
        for (const char* key : {"k1", "k2"}) {
            NewJob job;
            job.trigger_key = key;
            job.encounter = "Encounter/e1";
            job.kind = "assess";
            job.payload = "{}";
            ASSERT_TRUE(store->Enqueue(std::move(job)));
        }
        store->Close();
        auto audit = std::move(*AuditLog::Open((dir_ / "audit.log").string()));
        ASSERT_TRUE(audit->Append("trigger", {{"job", "1"}}));
    }
    std::string out;
    EXPECT_EQ(Run(out), 0) << out;
    EXPECT_NE(out.find("rule pack: "), std::string::npos) << out;
    EXPECT_NE(out.find("sha256 "), std::string::npos) << out;
    EXPECT_NE(out.find("queued 2"), std::string::npos) << out;
    EXPECT_NE(out.find("dead 0"), std::string::npos) << out;
    EXPECT_NE(out.find("oldest waiting job: 1,"), std::string::npos) << out;
    EXPECT_NE(out.find("audit trail: intact"), std::string::npos) << out;

    {
        // A dead letter needs a look, and is listed with its reason.
        auto store = std::move(*JobStore::Open((dir_ / "db").string()));
        auto leased =
            *store->Lease(SystemNow() + std::chrono::hours(1), std::chrono::seconds(30), 1);
        ASSERT_EQ(leased.size(), 1u);
        ASSERT_TRUE(store->DeadLetter(leased[0].id, "refused by the EHR", ""));
        store->Close();
    }
    EXPECT_EQ(Run(out), 1) << out;
    EXPECT_NE(out.find("dead 1"), std::string::npos) << out;
    EXPECT_NE(out.find("Encounter/e1"), std::string::npos) << out;
    EXPECT_NE(out.find("refused by the EHR"), std::string::npos) << out;

    // With polling configured, where its cursor stands.
    std::ofstream(config_) << R"({"server": {"auth": {"allowAnonymous": true}},
        "ehr": {"baseUrl": "http://127.0.0.1:9/fhir"}, "poll": {},
        "store": {"path": ")"
                           << (dir_ / "db").string() << R"("}, "audit": {"path": ")"
                           << (dir_ / "audit.log").string() << R"("}, "rules": {"path": ")"
                           << MICROCARE_SOURCE_DIR << R"(/config/rules/microneedling.json"}})";
    EXPECT_EQ(Run(out), 1) << out;
    EXPECT_NE(out.find("poll cursor (encounters): none yet"), std::string::npos) << out;
    {
        auto store = std::move(*JobStore::Open((dir_ / "db").string()));
        const TimePoint since(std::chrono::sys_days(std::chrono::year{2026} / 12 / 1));
        ASSERT_TRUE(store->CommitPollPage(
            PollPage{"encounters", {}, PollCursor{since + std::chrono::hours(2), since}}));
        store->Close();
    }
    EXPECT_EQ(Run(out), 1) << out;
    EXPECT_NE(out.find("poll cursor (encounters): updated after 2026-12-01T02:00:00"),
              std::string::npos)
        << out;

    // A damaged trail needs a look.
    std::ofstream(dir_ / "audit.log", std::ios::app) << "{\"seq\":99}\n";
    EXPECT_EQ(Run(out), 1) << out;
    EXPECT_NE(out.find("audit trail: "), std::string::npos);
    EXPECT_EQ(out.find("audit trail: intact"), std::string::npos) << out;
}

}  // namespace
}  // namespace microcare::adapter
