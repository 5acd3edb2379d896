#include "adapter/audit/audit_log.hpp"

#include <gtest/gtest.h>

#include "adapter/audit/audit_chain.hpp"
#include "adapter/audit/audit_checkpoint.hpp"
#include "fhir/json.hpp"
#include "tests/unit/adapter/audit/audit_test_trail.hpp"

namespace microcare::adapter {
namespace {

using testing::AuditTrailTest;
using Kind = AuditFinding::Kind;

class AuditLogTest : public AuditTrailTest {};

TEST_F(AuditLogTest, AnIntactChainVerifiesAcrossReopening) {
    Write(3);
    Write(2);  // a restart continues the chain
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
    EXPECT_EQ(report.records, 6u);  // the trail's own first record, then five
    EXPECT_EQ(report.head_seq, 6u);
    ASSERT_TRUE(report.checkpoint);
    EXPECT_EQ(report.checkpoint->records, 6u);  // written at close
    EXPECT_EQ(Lines().front().find("{\"seq\":1,\"ts\":\"2026-03-14T09:00:00"), 0u)
        << Lines().front();
    EXPECT_NE(Lines().front().find("\"event\":\"audit-start\""), std::string::npos);
}

// The seal covers the exact bytes of the line before `,"hash"`: an HMAC under the key.
TEST_F(AuditLogTest, EachLineIsSealedOverItsExactBytesWithTheKey) {
    Write(1);
    const std::string line = Lines().back();
    const auto at = line.find(",\"hash\":\"");
    ASSERT_NE(at, std::string::npos);
    EXPECT_EQ(line.size(), at + 9 + 64 + 2);
    EXPECT_TRUE(line.ends_with("\"}"));
    const std::string seal = line.substr(at + 9, 64);
    EXPECT_EQ(ChainKey::Hmac(testing::kTestKey)->Seal(line.substr(0, at)), seal);
    EXPECT_NE(Sha256Hex(line.substr(0, at)), seal);
}

TEST_F(AuditLogTest, AnUnkeyedTrailIsChainedWithSha256AndVerifySaysSo) {
    settings_.key.clear();
    settings_.key_file.clear();
    Write(2);
    const std::string line = Lines().back();
    const auto at = line.find(",\"hash\":\"");
    EXPECT_EQ(Sha256Hex(line.substr(0, at)), line.substr(at + 9, 64));
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
    bool unkeyed_note = false;
    for (const AuditFinding& note : report.notes) unkeyed_note |= note.kind == Kind::kUnkeyed;
    EXPECT_TRUE(unkeyed_note);
}

// Issue 8: a notification with a lone \udc00 wrote raw invalid bytes into the trail; verify
// then failed at that line and the service refused to restart.
TEST_F(AuditLogTest, InvalidUtf8AndLoneSurrogatesInValuesMakeValidJsonRecords) {
    {
        auto log = OpenLog();
        ASSERT_TRUE(log);
        const std::string nul("a\0b", 3);
        ASSERT_TRUE(
            log->Append("subscription-status", {{"subscription", "Subscription/\xed\xb0\x80"},
                                                {"type", "\xff\xfe handshake"},
                                                {"note", nul},
                                                {"k\xc0\xafy", "overlong"}}));
        ASSERT_TRUE(log->Append("job", {{"job", "1"}}));
    }
    for (const std::string& line : Lines()) {
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(line, issues);
        ASSERT_TRUE(doc) << line;
    }
    const std::string record = Lines()[1];
    EXPECT_NE(record.find("Subscription/\xef\xbf\xbd"), std::string::npos) << record;
    EXPECT_EQ(record.find('\xed'), std::string::npos);
    EXPECT_EQ(record.find('\xff'), std::string::npos);
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
    // ... and the service starts again on it.
    EXPECT_TRUE(OpenLog());
}

TEST_F(AuditLogTest, ReservedOrRepeatedKeysAreRefused) {
    auto log = OpenLog();
    ASSERT_TRUE(log);
    EXPECT_FALSE(log->Append("job", {{"hash", "x"}}));
    EXPECT_FALSE(log->Append("job", {{"prev", "x"}}));
    EXPECT_FALSE(log->Append("job", {{"a", "1"}, {"a", "2"}}));
    EXPECT_EQ(log->head().records, 1u);  // nothing written
}

TEST_F(AuditLogTest, ASecondWriterIsRefused) {
    auto first = OpenLog();
    ASSERT_TRUE(first);
    std::string problem;
    EXPECT_FALSE(AuditLog::Open(settings_, options_, &problem));
    EXPECT_NE(problem.find("another MicroCare holds it"), std::string::npos) << problem;
}

TEST_F(AuditLogTest, AKeyTooShortIsRefused) {
    settings_.key = "short";
    std::string problem;
    EXPECT_FALSE(AuditLog::Open(settings_, options_, &problem));
    EXPECT_NE(problem.find("at least 32 bytes"), std::string::npos) << problem;
}

TEST_F(AuditLogTest, CheckpointsFollowTheCountAndTheClock) {
    settings_.checkpoint_every = 3;
    settings_.checkpoint_interval = std::chrono::seconds(60);
    auto log = OpenLog();
    ASSERT_TRUE(log);
    auto checkpointed = [&] {
        return ReadCheckpoint(CheckpointPathOf(settings_), Keys()).checkpoint->records;
    };
    EXPECT_EQ(checkpointed(), 1u);  // at open
    ASSERT_TRUE(log->Append("job", {{"job", "1"}}));
    ASSERT_TRUE(log->Append("job", {{"job", "2"}}));
    EXPECT_EQ(checkpointed(), 1u);
    ASSERT_TRUE(log->Append("job", {{"job", "3"}}));
    EXPECT_EQ(checkpointed(), 4u);  // every 3 records
    ASSERT_TRUE(log->Append("job", {{"job", "4"}}));
    EXPECT_EQ(checkpointed(), 4u);
    now_ += std::chrono::seconds(61);
    ASSERT_TRUE(log->Append("job", {{"job", "5"}}));
    EXPECT_EQ(checkpointed(), 6u);  // a minute went by
    ASSERT_TRUE(log->Close());
    EXPECT_EQ(checkpointed(), 6u);
    EXPECT_FALSE(log->Append("job", {{"job", "6"}}));
}

TEST_F(AuditLogTest, RotationCarriesTheChainAcrossFilesAndRetentionIsRecorded) {
    settings_.rotate_bytes = 64 * 1024;
    const std::string padding(2000, 'x');
    {
        auto log = OpenLog();
        ASSERT_TRUE(log);
        for (int i = 0; i < 100; ++i) {
            ASSERT_TRUE(log->Append("job", {{"job", std::to_string(i)}, {"summary", padding}}));
        }
    }
    TrailFileSet set = ListTrailFiles(settings_.path);
    ASSERT_GE(set.files.size(), 3u);
    EXPECT_EQ(set.files.front().name, "audit.log.000000000001");
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
    EXPECT_EQ(report.records, 101u + set.files.size() - 1);  // one opening record per file
    // The first record of each new file names the one before it and carries its last hash.
    const std::vector<std::string> second = Lines(set.files[1].path);
    EXPECT_NE(second.front().find("\"event\":\"audit-continue\""), std::string::npos);
    EXPECT_NE(second.front().find("\"previousFile\":\"audit.log.000000000001\""),
              std::string::npos);
    const std::string last_of_first = Lines(set.files[0].path).back();
    const std::string first_hash = last_of_first.substr(last_of_first.size() - 66, 64);
    EXPECT_NE(second.front().find("\"prev\":\"" + first_hash + "\""), std::string::npos);

    // Keep two rotated files: the older ones go, and the trail says so.
    settings_.keep_files = 2;
    {
        auto log = OpenLog();
        ASSERT_TRUE(log);
        for (int i = 0; i < 40; ++i) {
            ASSERT_TRUE(log->Append("job", {{"job", std::to_string(i)}, {"summary", padding}}));
        }
    }
    set = ListTrailFiles(settings_.path);
    EXPECT_EQ(set.files.size(), 3u);  // two rotated, one active
    EXPECT_NE(set.files.front().name, "audit.log.000000000001");
    report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
    bool retention_note = false;
    for (const AuditFinding& note : report.notes) {
        retention_note |= note.kind == Kind::kOlderFilesMissing &&
                          note.message.find("retention") != std::string::npos;
    }
    EXPECT_TRUE(retention_note);
}

// Issue 8: rotation and retention by age, not only by size; the chain and the verify hold.
TEST_F(AuditLogTest, RotationAndRetentionByAgeKeepTheChain) {
    using std::chrono::hours;
    settings_.rotate_bytes = 0;
    settings_.rotate_every = hours(24);
    settings_.keep_for = hours(48);
    {
        auto log = OpenLog();
        ASSERT_TRUE(log);
        // Six days, a record every six hours: a new file a day.
        for (int i = 0; i < 24; ++i) {
            ASSERT_TRUE(log->Append("job", {{"job", std::to_string(i)}}));
            now_ += hours(6);
        }
    }
    const TrailFileSet set = ListTrailFiles(settings_.path);
    // Files that had ended more than two days before a rotation are gone: the last three days
    // rotated, and the active file.
    ASSERT_EQ(set.files.size(), 4u);
    for (const TrailFile& file : set.files) {
        EXPECT_LE(Lines(file.path).size(), 6u) << file.name;  // a day's records and its opener
    }
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
    std::size_t removals = 0;
    for (const TrailFile& file : set.files) {
        for (const std::string& line : Lines(file.path)) {
            if (line.find("\"event\":\"audit-retention\"") == std::string::npos) continue;
            ++removals;
            EXPECT_NE(line.find("\"keepHours\":\"48\""), std::string::npos) << line;
        }
    }
    EXPECT_EQ(removals, 2u);
}

TEST_F(AuditLogTest, ANewKeySealsANewFileAndEachFileIsCheckedWithItsOwnKey) {
    Write(3);
    const std::string old_key = settings_.key;
    settings_.key = "another-key-of-at-least-32-bytes-for-the-trail";
    Write(2);
    TrailFileSet set = ListTrailFiles(settings_.path);
    ASSERT_EQ(set.files.size(), 2u);
    // With the new key only, the old file cannot be checked: verify says which key it needs.
    AuditReport report = Verify();
    EXPECT_TRUE(Has(report, Kind::kKeyNeeded)) << Describe(report);
    // With both, all is intact.
    std::vector<ChainKey> keys = Keys();
    keys.push_back(*ChainKey::Hmac(old_key));
    report = VerifyTrail(TrailToVerify{settings_.path, keys, CheckpointPathOf(settings_), {}, {}});
    EXPECT_TRUE(report.intact()) << Describe(report);
}

}  // namespace
}  // namespace microcare::adapter
