// Issue 13: the audit trail of a PostgreSQL store, in its database. Two trails opened on one
// database (two replicas) append at once: one chain, no record lost or sealed twice, read back
// and checked as `microcare audit verify` does. Records cut from its end, or an edited record,
// are found, and a replica refuses to extend such a trail.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "adapter/audit/audit_chain.hpp"
#include "adapter/audit/audit_verify.hpp"
#include "adapter/configured_trail.hpp"
#include "adapter/store/job_store.hpp"
#include "tests/unit/adapter/store/pg_test_database.hpp"

namespace microcare::adapter {
namespace {

class AuditDatabaseTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!pg_.available()) GTEST_SKIP() << "PostgreSQL store not tested: " << pg_.skip_reason();
        // The store's migrations make the trail's tables.
        auto store = JobStore::Open(pg_.url());
        ASSERT_TRUE(store) << store.error().message();
        (*store)->Close();
        settings_.database = pg_.url();
        settings_.key = std::string(32, 'k');
    }

    std::unique_ptr<AuditLog> Open(std::string* problem = nullptr) {
        auto log = OpenConfiguredTrail(settings_, {}, problem);
        return log ? std::move(*log) : nullptr;
    }

    AuditReport Verify() {
        std::string problem;
        TrailToVerify keys;
        keys.keys.push_back(*ChainKey::Hmac(settings_.key));
        auto trail = CopyTrailFromDatabase(pg_.url(), keys, problem);
        EXPECT_TRUE(trail) << problem;
        return trail ? VerifyTrail(*trail) : AuditReport{};
    }

    static bool Has(const AuditReport& report, AuditFinding::Kind kind) {
        for (const AuditFinding& f : report.problems) {
            if (f.kind == kind) return true;
        }
        return false;
    }

    test_support::PgTestSchema pg_;
    AuditSettings settings_;
};

TEST_F(AuditDatabaseTest, TwoReplicasAppendingAtOnceMakeOneChain) {
    auto a = Open();
    auto b = Open();
    ASSERT_TRUE(a && b);
    constexpr int kEach = 200;
    auto append = [](AuditLog& log, const std::string& who) {
        for (int i = 0; i < kEach; ++i) {
            // Some alone, some through the group commit, as the service does both.
            if (i % 2 == 0) {
                EXPECT_TRUE(log.Append("decision", {{"job", who + std::to_string(i)}}));
            } else {
                log.AppendAsync(
                    AuditLog::MakeRecord("decision", {{"job", who + std::to_string(i)}}),
                    [](Result<void> done) { EXPECT_TRUE(done); });
            }
        }
    };
    std::thread ta([&] { append(*a, "a"); });
    std::thread tb([&] { append(*b, "b"); });
    ta.join();
    tb.join();
    ASSERT_TRUE(a->Close());
    ASSERT_TRUE(b->Close());

    const AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << (report.problems.empty() ? "" : report.problems[0].message);
    // audit-start once, whichever wrote first, and every record of both.
    EXPECT_EQ(report.head_seq, 1u + 2 * kEach);
    ASSERT_TRUE(report.checkpoint);
    EXPECT_EQ(report.checkpoint->records, report.head_seq);
    EXPECT_EQ(report.checkpoint->last_hash, report.head_hash);
}

TEST_F(AuditDatabaseTest, RecordsCutFromTheEndAreFoundAndTheTrailIsNotExtended) {
    {
        auto log = Open();
        ASSERT_TRUE(log);
        for (int i = 0; i < 5; ++i) ASSERT_TRUE(log->Append("decision", {{"job", "x"}}));
    }
    // Someone with the database but not the key hides the last two records.
    ASSERT_TRUE(pg_.Query("DELETE FROM audit_records WHERE seq > 4"));
    const AuditReport report = Verify();
    EXPECT_TRUE(Has(report, AuditFinding::Kind::kCutFromEnd));
    std::string problem;
    EXPECT_FALSE(Open(&problem));
    EXPECT_NE(problem.find("cut from the end"), std::string::npos) << problem;
    // ... and moving the head back too does not help without the key: the checkpoint is sealed.
    ASSERT_TRUE(
        pg_.Query("UPDATE audit_head SET seq = 4, hash = "
                  "(SELECT substr(line, length(line) - 65, 64) FROM audit_records "
                  "WHERE seq = 4)"));
    EXPECT_FALSE(Open(&problem));
    EXPECT_NE(problem.find("checkpoint"), std::string::npos) << problem;
}

TEST_F(AuditDatabaseTest, AnEditedRecordBreaksTheChain) {
    {
        auto log = Open();
        ASSERT_TRUE(log);
        for (int i = 0; i < 5; ++i) ASSERT_TRUE(log->Append("decision", {{"outcome", "high"}}));
    }
    ASSERT_TRUE(pg_.Query(
        "UPDATE audit_records SET line = replace(line, '\"high\"', '\"none\"') WHERE seq = 3"));
    const AuditReport report = Verify();
    EXPECT_FALSE(report.intact());
    EXPECT_TRUE(Has(report, AuditFinding::Kind::kEdited));
}

TEST_F(AuditDatabaseTest, AReplicaWithAnotherKeyIsRefused) {
    {
        auto log = Open();
        ASSERT_TRUE(log);
        ASSERT_TRUE(log->Append("decision", {{"job", "1"}}));
    }
    settings_.key = std::string(32, 'z');
    std::string problem;
    EXPECT_FALSE(Open(&problem));
    EXPECT_NE(problem.find("same audit key"), std::string::npos) << problem;
}

}  // namespace
}  // namespace microcare::adapter
