// Issue 13: replicas of MicroCare on one PostgreSQL store, in process: two services, each with
// its own port and audit trail, one database, one EHR. Triggers go to either replica; every
// acknowledged trigger ends in exactly one CarePlan, and the jobs of one encounter never run at
// once across replicas, even on an EHR whose conditional creates race.
#include <gtest/gtest.h>

#include <memory>
#include <thread>

#include "adapter/service/service.hpp"
#include "adapter/store/job_store.hpp"
#include "service_harness.hpp"
#include "tests/unit/adapter/store/pg_test_database.hpp"

namespace microcare::testing {
namespace {

class ReplicasTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!pg_.available()) {
            GTEST_SKIP() << "PostgreSQL store not tested: " << pg_.skip_reason();
        }
        ehr_ = std::make_unique<FakeEhr>();
        ehr_->Load(ReadSource("config/examples/absolute-isotretinoin.json"));
    }
    void TearDown() override {
        for (auto& replica : replicas_) replica->Stop();
        replicas_.clear();
        if (ehr_) ehr_->Stop();
        for (const auto& dir : dirs_) std::filesystem::remove_all(dir);
    }

    // A replica: its own directory (audit trail), the shared store.
    std::string StartReplica() {
        dirs_.push_back(FreshDirectory("replica" + std::to_string(dirs_.size())));
        adapter::ServiceConfig config = TestConfig(ehr_->BaseUrl(), dirs_.back());
        config.store.url = pg_.url();
        auto service = adapter::Service::Create(config, {}, {});
        EXPECT_TRUE(service) << service.error().message();
        if (!service) return "";
        replicas_.push_back(std::move(*service));
        replicas_.back()->Start();
        return "http://127.0.0.1:" + std::to_string(replicas_.back()->port()) + "/fhir";
    }

    std::vector<adapter::Job> Jobs() {
        auto store = adapter::JobStore::Open(pg_.url());
        if (!store) return {};
        adapter::JobFilter filter;
        filter.limit = 1000;
        auto jobs = (*store)->List(filter);
        return jobs ? *jobs : std::vector<adapter::Job>{};
    }

    bool AllDone(std::size_t count) {
        auto jobs = Jobs();
        if (jobs.size() != count) return false;
        for (const auto& job : jobs) {
            if (job.state != adapter::JobState::kDone) return false;
        }
        return true;
    }

    adapter::test_support::PgTestSchema pg_;
    std::unique_ptr<FakeEhr> ehr_;
    std::vector<std::unique_ptr<adapter::Service>> replicas_;
    std::vector<std::filesystem::path> dirs_;
};

TEST_F(ReplicasTest, TriggersToEitherReplicaEndInOneCarePlanAndNeverRunAtOnce) {
    ehr_->SetRaceMode(true, std::chrono::milliseconds(100));
    const std::string a = StartReplica();
    const std::string b = StartReplica();
    ASSERT_FALSE(a.empty() || b.empty());
    // Four triggers of one encounter at once, two through each replica; the same message sent
    // to both replicas is one job.
    std::vector<std::thread> senders;
    std::vector<Reply> replies(5);
    senders.emplace_back([&] {
        replies[0] = PostJson(a + "/$process-message",
                              MessageBundle("msg-1", "hdr-1", "Encounter/enc-mn-20261120"));
    });
    senders.emplace_back([&] {
        replies[1] = PostJson(b + "/$process-message",
                              MessageBundle("msg-1", "hdr-1", "Encounter/enc-mn-20261120"));
    });
    senders.emplace_back([&] {
        replies[2] = PostJson(b + "/$process-message",
                              MessageBundle("msg-2", "hdr-2", "Encounter/enc-mn-20261120"));
    });
    senders.emplace_back([&] {
        replies[3] = PostJson(a + "/$process-message",
                              MessageBundle("msg-3", "hdr-3", "Encounter/enc-mn-20261120"));
    });
    senders.emplace_back([&] {
        replies[4] =
            PostJson(b + "/notifications", ehr_->Get("Encounter", "enc-mn-20261120").value_or(""));
    });
    for (auto& sender : senders) sender.join();
    for (const Reply& reply : replies) {
        ASSERT_LT(reply.status, 300u) << reply.error << reply.body;
    }
    ASSERT_TRUE(WaitFor([&] { return AllDone(4); })) << Jobs().size() << " jobs";
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    EXPECT_EQ(ehr_->Count("DetectedIssue"), 1u);
    EXPECT_EQ(ehr_->MaxConcurrentTransactions(), 1u);
}

}  // namespace
}  // namespace microcare::testing
