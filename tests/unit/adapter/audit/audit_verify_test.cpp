// Issue 8: each way of tampering with the trail is caught, and named, by verify.
#include "adapter/audit/audit_verify.hpp"

#include <gtest/gtest.h>

#include "adapter/audit/audit_chain.hpp"
#include "fhir/json.hpp"
#include "tests/unit/adapter/audit/audit_test_trail.hpp"

namespace microcare::adapter {
namespace {

using Kind = AuditFinding::Kind;

class AuditTamperTest : public testing::AuditTrailTest {
protected:
    // Six records (the opening one and five jobs), checkpointed at close.
    void SetUp() override {
        AuditTrailTest::SetUp();
        Write(5);
        ASSERT_EQ(Lines().size(), 6u);
        ASSERT_TRUE(Verify().intact()) << Describe(Verify());
    }

    // A record sealed as MicroCare seals it, but by someone without the key: plain SHA-256.
    static std::string ResealWithoutKey(std::string line, const std::string& prev) {
        const auto at = line.find(",\"prev\":\"");
        line = line.substr(0, at) + ",\"prev\":\"" + prev + "\"}";
        return SealLine(line, ChainKey());
    }
    static std::string HashOf(const std::string& line) { return line.substr(line.size() - 66, 64); }
};

TEST_F(AuditTamperTest, AnEditedFieldIsNamedAtItsLine) {
    auto lines = Lines();
    lines[2].replace(lines[2].find("\"done\""), 6, "\"dead\"");
    Rewrite(lines);
    AuditReport report = Verify();
    EXPECT_TRUE(Has(report, Kind::kEdited, 3)) << Describe(report);
    EXPECT_EQ(report.problems.size(), 1u) << Describe(report);
}

TEST_F(AuditTamperTest, ARemovedMiddleRecordIsNamed) {
    auto lines = Lines();
    lines.erase(lines.begin() + 2);
    Rewrite(lines);
    AuditReport report = Verify();
    ASSERT_FALSE(report.intact());
    EXPECT_EQ(report.problems.front().kind, Kind::kRemoved) << Describe(report);
    EXPECT_EQ(report.problems.front().line, 3u);
    EXPECT_NE(report.problems.front().message.find("record 3 is missing"), std::string::npos)
        << Describe(report);
}

TEST_F(AuditTamperTest, TwoSwappedRecordsAreNamedReordered) {
    auto lines = Lines();
    std::swap(lines[2], lines[3]);
    Rewrite(lines);
    AuditReport report = Verify();
    ASSERT_EQ(report.problems.size(), 1u) << Describe(report);
    EXPECT_EQ(report.problems.front().kind, Kind::kReordered);
    EXPECT_EQ(report.problems.front().line, 3u);
}

TEST_F(AuditTamperTest, CuttingTheLastRecordsIsCaughtByTheCheckpoint) {
    auto lines = Lines();
    lines.resize(4);
    Rewrite(lines);
    AuditReport report = Verify();
    ASSERT_TRUE(Has(report, Kind::kCutFromEnd)) << Describe(report);
    EXPECT_NE(report.problems.front().message.find("records 5 to 6 were cut from the end"),
              std::string::npos)
        << Describe(report);
    // ... and the service does not extend such a trail.
    std::string problem;
    EXPECT_FALSE(AuditLog::Open(settings_, options_, &problem));
    EXPECT_NE(problem.find("cut from the end"), std::string::npos) << problem;
}

TEST_F(AuditTamperTest, AnEmptiedFileIsCaughtByTheCheckpoint) {
    Rewrite({});
    AuditReport report = Verify();
    EXPECT_TRUE(Has(report, Kind::kEmptied)) << Describe(report);
    std::filesystem::remove(settings_.path);
    report = Verify();
    EXPECT_TRUE(Has(report, Kind::kEmptied)) << Describe(report);
    std::string problem;
    EXPECT_FALSE(AuditLog::Open(settings_, options_, &problem));
    EXPECT_NE(problem.find("emptied"), std::string::npos) << problem;
}

TEST_F(AuditTamperTest, AChainRewrittenWithRecomputedSha256IsNamedForged) {
    // An edit, and every hash after it recomputed as the old format allowed.
    auto lines = Lines();
    lines[2].replace(lines[2].find("\"done\""), 6, "\"dead\"");
    std::string prev = HashOf(lines[1]);
    for (std::size_t i = 2; i < lines.size(); ++i) {
        lines[i] = ResealWithoutKey(lines[i], prev);
        prev = HashOf(lines[i]);
    }
    Rewrite(lines);
    AuditReport report = Verify();
    EXPECT_TRUE(Has(report, Kind::kForged, 3)) << Describe(report);
    EXPECT_TRUE(Has(report, Kind::kRewritten)) << Describe(report);
}

TEST_F(AuditTamperTest, AnAppendedForgedRecordIsNamed) {
    auto lines = Lines();
    std::string forged = lines.back();
    forged.replace(forged.find("\"seq\":6"), 7, "\"seq\":7");
    lines.push_back(ResealWithoutKey(forged, HashOf(lines.back())));
    Rewrite(lines);
    AuditReport report = Verify();
    EXPECT_TRUE(Has(report, Kind::kForged, 7)) << Describe(report);
    // A made-up seal rather than SHA-256: still caught, as an edit.
    lines.back().replace(lines.back().size() - 10, 8, "00000000");
    Rewrite(lines);
    report = Verify();
    EXPECT_TRUE(Has(report, Kind::kEdited, 7)) << Describe(report);
}

// Issue 8: with a member after the hash, verify said intact while jq read the injected value.
TEST_F(AuditTamperTest, AMemberAppendedAfterTheHashIsNamed) {
    auto lines = Lines();
    lines[3].pop_back();
    lines[3] += ",\"result\":\"dead\"}";
    Rewrite(lines);
    AuditReport report = Verify();
    EXPECT_TRUE(Has(report, Kind::kAppendedAfterHash, 4)) << Describe(report);
}

TEST_F(AuditTamperTest, AMemberSlippedInBeforeTheHashIsAnEdit) {
    auto lines = Lines();
    const auto at = lines[3].find(",\"prev\"");
    lines[3].insert(at, ",\"x\":\"y\"");
    Rewrite(lines);
    EXPECT_TRUE(Has(Verify(), Kind::kEdited, 4)) << Describe(Verify());
}

// Issue 8: after a logrotate copytruncate, verification failed at line 1 with no explanation.
TEST_F(AuditTamperTest, CopytruncateIsNamedWithWhatToDo) {
    std::filesystem::copy_file(settings_.path, dir_ / "audit.log.1");
    auto log = OpenLog();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->Append("job", {{"job", "before"}}));
    std::filesystem::resize_file(settings_.path, 0);  // what copytruncate does to the original
    ASSERT_TRUE(log->Append("job", {{"job", "after"}}));
    log.reset();
    AuditReport report = Verify();
    ASSERT_TRUE(Has(report, Kind::kCutFromFront, 1)) << Describe(report);
    const std::string& message = report.problems.front().message;
    EXPECT_NE(message.find("copytruncate"), std::string::npos) << message;
    EXPECT_NE(message.find("audit.rotateBytes"), std::string::npos) << message;
    EXPECT_NE(message.find("audit.log.1"), std::string::npos) << message;
    // The service goes on writing after it.
    EXPECT_TRUE(OpenLog());
}

TEST_F(AuditTamperTest, AnEditedOrForgedCheckpointIsNamed) {
    const std::string path = CheckpointPathOf(settings_);
    std::string text = Lines(path).front();
    text.replace(text.find("\"records\":\"6\""), 13, "\"records\":\"4\"");
    Rewrite({text}, path);
    EXPECT_TRUE(Has(Verify(), Kind::kCheckpointInvalid)) << Describe(Verify());
    std::filesystem::remove(path);
    EXPECT_TRUE(Has(Verify(), Kind::kCheckpointMissing)) << Describe(Verify());
}

TEST_F(AuditTamperTest, WithoutTheKeyVerifySaysWhichKeyItNeeds) {
    AuditReport report =
        VerifyTrail(TrailToVerify{settings_.path, {}, CheckpointPathOf(settings_), {}, {}});
    EXPECT_TRUE(Has(report, Kind::kKeyNeeded, 1)) << Describe(report);
    std::vector<ChainKey> wrong{*ChainKey::Hmac("a-wrong-key-that-is-long-enough-to-use!")};
    report = VerifyTrail(TrailToVerify{settings_.path, wrong, CheckpointPathOf(settings_), {}, {}});
    EXPECT_TRUE(Has(report, Kind::kKeyNeeded, 1)) << Describe(report);
}

TEST_F(AuditTamperTest, ARenamedRotatedFileIsNamed) {
    std::filesystem::rename(settings_.path, RotatedPath(settings_.path, 3));
    AuditReport report = Verify();
    EXPECT_TRUE(Has(report, Kind::kFileRenamed, 1)) << Describe(report);
}

}  // namespace
}  // namespace microcare::adapter
