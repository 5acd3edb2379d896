// Issue 8: the trail after a crash, a full disk, or damage: repaired and recorded where that is
// safe, refused with the line and the command to inspect it where it is not.
#include <gtest/gtest.h>

#include <atomic>

#include "adapter/audit/audit_chain.hpp"
#include "adapter/audit/audit_file.hpp"
#include "adapter/audit/audit_log.hpp"
#include "tests/unit/adapter/audit/audit_test_trail.hpp"
#include "tests/unit/adapter/audit/full_disk.hpp"

namespace microcare::adapter {
namespace {

using Kind = AuditFinding::Kind;

class AuditRecoveryTest : public testing::AuditTrailTest {};

TEST_F(AuditRecoveryTest, ATornLastLineIsCutAtStartUpAndRecorded) {
    Write(3);
    // A crash in the middle of a write: part of a record, no newline.
    std::ofstream(settings_.path, std::ios::app | std::ios::binary)
        << R"({"seq":5,"ts":"2026-03-14T09:00:00Z","event":"job","job":)";
    AuditReport before = Verify();
    EXPECT_TRUE(before.intact()) << Describe(before);  // a note: the service cuts it
    ASSERT_FALSE(before.notes.empty());

    auto log = OpenLog();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->Append("job", {{"job", "after the crash"}}));
    ASSERT_TRUE(log->Close());
    const auto lines = Lines();
    ASSERT_EQ(lines.size(), 6u);
    EXPECT_NE(lines[4].find("\"event\":\"audit-repair\",\"file\":\"audit.log\",\"line\":\"5\""),
              std::string::npos)
        << lines[4];
    AuditReport after = Verify();
    EXPECT_TRUE(after.intact()) << Describe(after);
    EXPECT_TRUE(after.notes.empty() || after.notes.front().kind != Kind::kTornLine);
}

TEST_F(AuditRecoveryTest, ATornFirstLineOfANewTrailIsCutToo) {
    std::filesystem::create_directories(dir_);
    std::ofstream(settings_.path, std::ios::binary) << R"({"seq":1,"ts")";
    auto log = OpenLog();
    ASSERT_TRUE(log);
    log.reset();
    EXPECT_TRUE(Verify().intact()) << Describe(Verify());
    EXPECT_NE(Lines().at(1).find("audit-repair"), std::string::npos);
}

// Issue 8: a torn or damaged line blocked start-up with no line number and no documented
// recovery.
TEST_F(AuditRecoveryTest, DamageInTheMiddleRefusesTheOpenWithTheLineAndTheCommand) {
    Write(4);
    auto lines = Lines();
    lines[2].replace(lines[2].find("\"done\""), 6, "\"dead\"");
    Rewrite(lines);
    std::string problem;
    auto log = AuditLog::Open(settings_, options_, &problem);
    ASSERT_FALSE(log);
    EXPECT_EQ(log.error(), Error::kAuditDamaged);
    EXPECT_NE(problem.find("audit.log:3: "), std::string::npos) << problem;
    EXPECT_NE(problem.find("microcare audit verify --config"), std::string::npos) << problem;
    EXPECT_NE(problem.find("sed -n '3p'"), std::string::npos) << problem;
    // Refused means untouched.
    EXPECT_EQ(Lines(), lines);
}

TEST_F(AuditRecoveryTest, AMissingCheckpointIsRecordedInTheTrail) {
    Write(2);
    std::filesystem::remove(CheckpointPathOf(settings_));
    Write(1);
    AuditReport report = Verify();
    EXPECT_TRUE(Has(report, Kind::kCheckpointMissing, 4)) << Describe(report);
    EXPECT_NE(Lines().at(3).find("audit-checkpoint-missing"), std::string::npos);
    // Recorded once, it does not stop the next start.
    Write(1);
    EXPECT_EQ(Lines().size(), 6u);
}

TEST_F(AuditRecoveryTest, ACrashBetweenARotationsRenameAndTheNewFileIsContinued) {
    Write(3);
    std::filesystem::rename(settings_.path, RotatedPath(settings_.path, 1));
    Write(2);
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
    EXPECT_EQ(report.files.size(), 2u);
    EXPECT_NE(Lines().front().find("\"previousFile\":\"audit.log.000000000001\""),
              std::string::npos);
}

// A trail as earlier releases wrote it: SHA-256 over the record with its closing brace, no
// opening record, no checkpoint.
std::vector<std::string> LegacyTrail(int records) {
    std::vector<std::string> lines;
    std::string prev(kGenesisHash);
    for (int i = 1; i <= records; ++i) {
        const std::string body = "{\"seq\":" + std::to_string(i) +
                                 ",\"ts\":\"2025-01-01T00:00:00Z\",\"event\":\"job\",\"job\":\"" +
                                 std::to_string(i) + "\",\"prev\":\"" + prev + "\"}";
        const std::string hash = Sha256Hex(body);
        lines.push_back(body.substr(0, body.size() - 1) + ",\"hash\":\"" + hash + "\"}");
        prev = hash;
    }
    return lines;
}

TEST_F(AuditRecoveryTest, ATrailOfAnEarlierReleaseIsKeptAndContinuedInTheNewFormat) {
    Rewrite(LegacyTrail(3));
    AuditReport before = Verify();
    EXPECT_TRUE(before.intact()) << Describe(before);

    Write(2);
    TrailFileSet set = ListTrailFiles(settings_.path);
    ASSERT_EQ(set.files.size(), 2u);
    EXPECT_EQ(Lines(set.files[0].path), LegacyTrail(3));  // untouched
    EXPECT_NE(Lines().front().find("\"previousKey\":\"format-1\""), std::string::npos)
        << Lines().front();
    AuditReport after = Verify();
    EXPECT_TRUE(after.intact()) << Describe(after);
    EXPECT_EQ(after.records, 6u);

    // Its records are still checked.
    auto legacy = Lines(set.files[0].path);
    legacy[1].replace(legacy[1].find("\"job\":\"2\""), 9, "\"job\":\"9\"");
    Rewrite(legacy, set.files[0].path);
    EXPECT_TRUE(Has(Verify(), Kind::kEdited, 2)) << Describe(Verify());
}

class AuditFullDiskTest : public testing::AuditTrailTest {
protected:
    void SetUp() override {
        AuditTrailTest::SetUp();
        options_.open_file = testing::FullDiskOpener(full_, truncate_fails_);
    }
    std::shared_ptr<std::atomic<bool>> full_ = std::make_shared<std::atomic<bool>>(false);
    std::shared_ptr<std::atomic<bool>> truncate_fails_ = std::make_shared<std::atomic<bool>>(false);
};

// Issue 8: with the disk full the trail stopped at a half-written line, nothing was reported,
// and after space returned it stayed stopped.
TEST_F(AuditFullDiskTest, AppendReportsTheErrorLeavesNoHalfLineAndResumes) {
    auto log = OpenLog();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->Append("job", {{"job", "1"}}));
    *full_ = true;
    auto failed = log->Append("job", {{"job", "2"}});
    ASSERT_FALSE(failed);
    EXPECT_EQ(failed.error(), boost::system::errc::no_space_on_device);
    EXPECT_FALSE(log->Append("job", {{"job", "3"}}));
    EXPECT_FALSE(log->health().writable);
    EXPECT_EQ(log->health().failed_appends, 2u);
    // Nothing of the refused records is in the file.
    EXPECT_EQ(Lines().size(), 2u);
    EXPECT_TRUE(Verify().notes.empty() || Verify().notes.front().kind != Kind::kTornLine);

    *full_ = false;
    ASSERT_TRUE(log->Append("job", {{"job", "4"}}));
    EXPECT_TRUE(log->health().writable);
    ASSERT_TRUE(log->Close());
    const auto lines = Lines();
    ASSERT_EQ(lines.size(), 4u);
    EXPECT_NE(lines[2].find("\"event\":\"audit-resumed\",\"failedAppends\":\"2\""),
              std::string::npos)
        << lines[2];
    EXPECT_NE(lines[2].find("No space left on device"), std::string::npos) << lines[2];
    EXPECT_NE(lines[3].find("\"job\":\"4\""), std::string::npos);
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
}

TEST_F(AuditFullDiskTest, AHalfLineThatCouldNotBeCutIsCutFromTheKnownOffsetLater) {
    auto log = OpenLog();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->Append("job", {{"job", "1"}}));
    *full_ = true;
    *truncate_fails_ = true;
    EXPECT_FALSE(log->Append("job", {{"job", "2"}}));
    // The half line is still there ...
    std::ifstream in(settings_.path, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(text.back(), '\n');
    // ... until space returns: cut back to the last whole record, then written.
    *full_ = false;
    *truncate_fails_ = false;
    ASSERT_TRUE(log->Append("job", {{"job", "3"}}));
    ASSERT_TRUE(log->Close());
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
    EXPECT_EQ(report.records, 4u);  // start, 1, resumed, 3
}

TEST_F(AuditFullDiskTest, AFullDiskAtStartUpRefusesTheOpen) {
    *full_ = true;
    std::string problem;
    EXPECT_FALSE(AuditLog::Open(settings_, options_, &problem));
    EXPECT_NE(problem.find("No space left on device"), std::string::npos) << problem;
    *full_ = false;
    EXPECT_TRUE(OpenLog());
    EXPECT_TRUE(Verify().intact()) << Describe(Verify());
}

}  // namespace
}  // namespace microcare::adapter
