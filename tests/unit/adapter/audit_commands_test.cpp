#include "adapter/audit_commands.hpp"

#include <gtest/gtest.h>

#include <sstream>

#include "fhir/json.hpp"
#include "tests/unit/adapter/audit/audit_test_trail.hpp"

namespace microcare::adapter {
namespace {

class AuditCommandsTest : public testing::AuditTrailTest {
protected:
    void SetUp() override {
        AuditTrailTest::SetUp();
        const std::string key_file = (dir_ / "audit.key").string();
        std::ofstream(key_file) << testing::kTestKey << "\n";
        config_ = (dir_ / "microcare.json").string();
        std::ofstream(config_) << R"({
  "server": {"port": 0, "auth": {"allowAnonymous": true}},
  "ehr": {"baseUrl": "https://ehr.example/fhir"},
  "store": {"path": ")" << (dir_ / "store" / "microcare.db").string()
                               << R"("},
  "audit": {"path": ")" << settings_.path
                               << R"(", "keyFile": ")" << key_file << R"("}
})";
        // The configuration puts the checkpoint beside the store, as the fixture does.
        auto log = OpenLog();
        ASSERT_TRUE(log);
        ASSERT_TRUE(log->Append("trigger", {{"channel", "notification"},
                                            {"job", "1"},
                                            {"encounter", "Encounter/enc-1"},
                                            {"patient", "Patient/pat-1"}}));
        ASSERT_TRUE(log->Append("trigger", {{"channel", "notification"},
                                            {"job", "2"},
                                            {"encounter", "Encounter/enc-2"},
                                            {"patient", "Patient/pat-2"}}));
        now_ += std::chrono::hours(24);
        ASSERT_TRUE(
            log->Append("decision", {{"job", "1"},
                                     {"encounter", "Encounter/enc-1"},
                                     {"findings", "A8:absolute@Condition/c1 B2:relative"}}));
        ASSERT_TRUE(log->Append("job", {{"job", "1"}, {"result", "done"}, {"summary", "\x1b[2J"}}));
        ASSERT_TRUE(log->Append("job", {{"job", "2"}, {"result", "done"}}));
    }

    int Run(int (*command)(const AuditArgs&, std::ostream&, std::ostream&), const AuditArgs& args) {
        out_.str("");
        err_.str("");
        return command(args, out_, err_);
    }

    AuditArgs WithConfig() const {
        AuditArgs args;
        args.config_path = config_;
        return args;
    }

    std::string config_;
    std::ostringstream out_;
    std::ostringstream err_;
};

TEST_F(AuditCommandsTest, VerifyWithTheConfigChecksTheKeyAndTheCheckpoint) {
    EXPECT_EQ(Run(RunAuditVerify, WithConfig()), 0) << err_.str();
    EXPECT_NE(out_.str().find("chain intact"), std::string::npos) << out_.str();
    EXPECT_NE(out_.str().find("checkpoint of"), std::string::npos) << out_.str();

    auto lines = Lines();
    lines[3].replace(lines[3].find("A8"), 2, "A9");
    Rewrite(lines);
    EXPECT_EQ(Run(RunAuditVerify, WithConfig()), 2);
    EXPECT_NE(err_.str().find(settings_.path + ":4: edited: "), std::string::npos) << err_.str();
    EXPECT_NE(err_.str().find("NOT INTACT"), std::string::npos) << err_.str();

    AuditArgs json = WithConfig();
    json.format = "json";
    EXPECT_EQ(Run(RunAuditVerify, json), 2);
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(out_.str(), issues);
    ASSERT_TRUE(doc) << out_.str();
    EXPECT_EQ(doc->Root()["problems"][0]["kind"].String(), "edited");
    EXPECT_EQ(doc->Root()["problems"][0]["line"].NumberText(), "4");
}

// The form of earlier releases goes on working: the file alone.
TEST_F(AuditCommandsTest, VerifyOfAFileNeedsItsKeyFile) {
    AuditArgs args;
    args.file = settings_.path;
    EXPECT_EQ(Run(RunAuditVerify, args), 2);
    EXPECT_NE(err_.str().find("key-needed"), std::string::npos) << err_.str();
    args.key_files = {(dir_ / "audit.key").string()};
    args.checkpoint_path = CheckpointPathOf(settings_);
    EXPECT_EQ(Run(RunAuditVerify, args), 0) << err_.str();
}

TEST_F(AuditCommandsTest, BadInputIsRefusedWithExit2) {
    EXPECT_EQ(Run(RunAuditVerify, AuditArgs{}), 2);
    EXPECT_NE(err_.str().find("name the trail"), std::string::npos);

    std::ofstream(config_) << R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"}, "audit": {"rotateBytes": 5}})";
    EXPECT_EQ(Run(RunAuditVerify, WithConfig()), 2);
    EXPECT_NE(err_.str().find("audit.rotateBytes"), std::string::npos) << err_.str();

    AuditArgs args;
    args.file = settings_.path;
    args.since = "yesterday";
    EXPECT_EQ(Run(RunAuditShow, args), 2);
    EXPECT_NE(err_.str().find("--since: \"yesterday\" is not a FHIR date"), std::string::npos);
}

TEST_F(AuditCommandsTest, ShowAnswersForAnEncounterWithTheWholeJob) {
    AuditArgs args = WithConfig();
    args.encounter = "enc-1";
    EXPECT_EQ(Run(RunAuditShow, args), 0) << err_.str();
    const std::string table = out_.str();
    EXPECT_NE(table.find("\ttrigger\tEncounter/enc-1\tPatient/pat-1\t"), std::string::npos)
        << table;
    EXPECT_NE(table.find("\tdecision\tEncounter/enc-1\t"), std::string::npos) << table;
    EXPECT_NE(table.find("\tjob\t-\t-\tjob=1 result=done"), std::string::npos) << table;
    EXPECT_EQ(table.find("enc-2"), std::string::npos) << table;
    EXPECT_EQ(table.find("job=2"), std::string::npos) << table;
    EXPECT_EQ(table.find('\x1b'), std::string::npos);  // no terminal escapes from the trail

    args.encounter.clear();
    args.patient = "Patient/pat-2";
    args.format = "json";
    EXPECT_EQ(Run(RunAuditShow, args), 0) << err_.str();
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(out_.str(), issues);
    ASSERT_TRUE(doc) << out_.str();
    ASSERT_EQ(doc->Root().Size(), 2u) << out_.str();  // the trigger and its job's outcome
    EXPECT_EQ(doc->Root()[1]["fields"]["job"].String(), "2");

    args = WithConfig();
    args.rule = "B2";
    EXPECT_EQ(Run(RunAuditShow, args), 0);
    EXPECT_NE(out_.str().find("decision"), std::string::npos) << out_.str();

    args = WithConfig();
    args.since = "2026-03-15";
    EXPECT_EQ(Run(RunAuditShow, args), 0);
    EXPECT_EQ(out_.str().find("trigger"), std::string::npos) << out_.str();
    EXPECT_NE(out_.str().find("decision"), std::string::npos) << out_.str();
}

TEST_F(AuditCommandsTest, ExportWritesTheSealedRecordsAsJsonLines) {
    AuditArgs args = WithConfig();
    EXPECT_EQ(Run(RunAuditExport, args), 0) << err_.str();
    std::string expected;
    for (const std::string& line : Lines()) expected += line + "\n";
    EXPECT_EQ(out_.str(), expected);

    args.after = 4;
    EXPECT_EQ(Run(RunAuditExport, args), 0);
    EXPECT_EQ(out_.str(), Lines()[4] + "\n" + Lines()[5] + "\n");
}

}  // namespace
}  // namespace microcare::adapter
