// The reload logic without signals or sockets: a valid pack is put in force for later snapshots
// while an earlier snapshot keeps its pack; a broken pack or configuration is refused with every
// problem and changes nothing; live keys apply at once and the rest is reported as needing a
// restart. Both outcomes reach the audit trail.
#include "adapter/service/reloader.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "adapter/file_io.hpp"
#include "adapter/rule_pack_file.hpp"

namespace microcare::adapter {
namespace {

namespace fs = std::filesystem;

const std::string kShipped = std::string(MICROCARE_SOURCE_DIR) + "/config/rules/microneedling.json";
constexpr const char* kEhrToken = "ehr-token-0123456789abcdef";
constexpr const char* kAdminToken = "admin-token-0123456789abcdef";

std::string Replaced(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
}

class ReloaderTest : public ::testing::Test {
protected:
    ReloaderTest() {
        dir_ = fs::temp_directory_path() /
               ("microcare-reloader-" + std::to_string(getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        fs::remove_all(dir_);
        fs::create_directories(dir_);
        pack_path_ = (dir_ / "pack.json").string();
        config_path_ = (dir_ / "microcare.json").string();
        WritePack(ReadFile(kShipped).value_or(""));
        WriteConfig(8080, kEhrToken, "info");
        fhir::IssueList issues;
        running_ = *LoadServiceConfig(config_path_, issues);
        auto pack = LoadRulePackFile(pack_path_, issues);
        pack_ = std::make_unique<RulePackInForce>(
            std::make_shared<const rules::RuleSet>(std::move(*pack)));
        audit_ = std::move(*AuditLog::Open((dir_ / "audit.log").string()));
    }
    ~ReloaderTest() override {
        audit_.reset();
        fs::remove_all(dir_);
    }

    void WritePack(const std::string& text) { std::ofstream(pack_path_) << text; }
    void WriteConfig(int port, const std::string& ehr_token, const std::string& level) {
        std::ofstream(config_path_)
            << R"({"server": {"port": )" << port << R"(, "adminToken": ")" << kAdminToken
            << R"(", "auth": {"bearerTokens": [")" << ehr_token
            << R"("]}}, "ehr": {"baseUrl": "http://127.0.0.1:9/fhir"},
            "store": {"path": ")"
            << (dir_ / "db").string() << R"("}, "audit": {"path": ")"
            << (dir_ / "audit.log").string() << R"("},
            "rules": {"path": ")"
            << pack_path_ << R"("}, "log": {"level": ")" << level << R"("}})";
    }
    Reloader Make() {
        return Reloader(config_path_, running_, *pack_, *audit_,
                        [this](const ServiceConfig& c) { applied_.push_back(c); });
    }
    std::string Trail() { return ReadFile((dir_ / "audit.log").string()).value_or(""); }

    fs::path dir_;
    std::string pack_path_;
    std::string config_path_;
    ServiceConfig running_;
    std::unique_ptr<RulePackInForce> pack_;
    std::unique_ptr<AuditLog> audit_;
    std::vector<ServiceConfig> applied_;
};

TEST_F(ReloaderTest, AValidPackIsInForceForLaterJobsWhileARunningJobKeepsItsOwn) {
    const auto running_job = pack_->Snapshot();
    WritePack(Replaced(ReadFile(kShipped).value_or(""), R"("version": "1.0.0")",
                       R"("version": "1.0.1")"));
    Reloader reloader = Make();

    ReloadReport report = reloader.Reload("admin");

    ASSERT_TRUE(report.applied()) << report.Summary();
    EXPECT_EQ(report.pack.version, "1.0.1");
    EXPECT_EQ(report.previous.version, "1.0.0");
    EXPECT_NE(report.pack.sha256, report.previous.sha256);
    EXPECT_EQ(pack_->Snapshot()->version, "1.0.1");
    EXPECT_EQ(running_job->version, "1.0.0");
    EXPECT_TRUE(report.changes.live.empty());
    EXPECT_TRUE(report.changes.restart_needed.empty());
    ASSERT_EQ(applied_.size(), 1u);
    const std::string trail = Trail();
    EXPECT_NE(trail.find(R"("event":"reload")"), std::string::npos) << trail;
    EXPECT_NE(trail.find(R"("outcome":"applied")"), std::string::npos) << trail;
    EXPECT_NE(trail.find(report.pack.sha256), std::string::npos);
}

TEST_F(ReloaderTest, ABrokenPackIsRefusedWithEveryProblemAndTheOldPackStays) {
    const auto before = pack_->Snapshot();
    std::string broken = ReadFile(kShipped).value_or("");
    broken = Replaced(broken, R"("severity": "relative")", R"("severity": "sometimes")");
    broken = Replaced(broken, R"("version": "1.0.0")", R"("version": 7)");
    WritePack(broken);
    Reloader reloader = Make();

    ReloadReport report = reloader.Reload("SIGHUP");

    EXPECT_EQ(report.outcome, ReloadReport::Outcome::kRefused);
    EXPECT_EQ(report.file, pack_path_);
    std::size_t errors = 0;
    for (const fhir::Issue& issue : report.issues) {
        if (issue.severity != fhir::IssueSeverity::kError) continue;
        ++errors;
        EXPECT_FALSE(issue.path.empty()) << issue.message;
    }
    EXPECT_GE(errors, 2u);
    EXPECT_EQ(pack_->Snapshot(), before);
    EXPECT_EQ(report.pack.sha256, before->sha256);
    EXPECT_TRUE(applied_.empty());
    const std::string trail = Trail();
    EXPECT_NE(trail.find(R"("outcome":"refused")"), std::string::npos) << trail;
    EXPECT_NE(trail.find(R"("trigger":"SIGHUP")"), std::string::npos) << trail;
    // The refusal as an OperationOutcome: the problems, then what stays in force.
    const fhir::IssueList outcome = report.RefusalIssues();
    EXPECT_EQ(outcome.issues().back().severity, fhir::IssueSeverity::kInformation);
    EXPECT_NE(outcome.issues().back().message.find(before->sha256), std::string::npos);
}

TEST_F(ReloaderTest, ABrokenConfigurationIsRefusedAndNothingChanges) {
    std::ofstream(config_path_) << R"({"server": {"port": "eighty"}})";
    Reloader reloader = Make();

    ReloadReport report = reloader.Reload("admin");

    EXPECT_EQ(report.outcome, ReloadReport::Outcome::kRefused);
    EXPECT_EQ(report.file, config_path_);
    EXPECT_TRUE(report.issues.HasErrors());
    EXPECT_TRUE(applied_.empty());
}

TEST_F(ReloaderTest, LiveKeysApplyAndTheRestWaitsForARestart) {
    WriteConfig(9090, "new-ehr-token-0123456789abcdef", "debug");
    Reloader reloader = Make();

    ReloadReport report = reloader.Reload("admin");

    ASSERT_TRUE(report.applied()) << report.Summary();
    EXPECT_EQ(report.changes.live,
              (std::vector<std::string>{"server.auth.bearerTokens", "log.level"}));
    EXPECT_EQ(report.changes.restart_needed, (std::vector<std::string>{"server.port"}));
    ASSERT_EQ(applied_.size(), 1u);
    EXPECT_EQ(applied_[0].server.bearer_tokens,
              (std::vector<std::string>{"new-ehr-token-0123456789abcdef"}));
    EXPECT_EQ(applied_[0].log_level, "debug");
    EXPECT_EQ(applied_[0].server.port, 8080) << "a restart-only key keeps its old value";
    // Secrets are named, never shown.
    EXPECT_EQ(report.Json().find("new-ehr-token"), std::string::npos);
    EXPECT_EQ(Trail().find("new-ehr-token"), std::string::npos);

    // Reloading the same files again changes nothing more.
    ReloadReport again = reloader.Reload("admin");
    ASSERT_TRUE(again.applied());
    EXPECT_TRUE(again.changes.live.empty());
    EXPECT_EQ(again.changes.restart_needed, (std::vector<std::string>{"server.port"}));
}

TEST_F(ReloaderTest, TheAdminTokenMustNotBeAnEhrToken) {
    WriteConfig(8080, kAdminToken, "info");
    Reloader reloader = Make();

    ReloadReport report = reloader.Reload("admin");

    EXPECT_EQ(report.outcome, ReloadReport::Outcome::kRefused);
    bool named = false;
    for (const fhir::Issue& issue : report.issues) named |= issue.path == "server.adminToken";
    EXPECT_TRUE(named);
}

}  // namespace
}  // namespace microcare::adapter
