// `microcare jobs list|show|retry|purge` as an admin uses them: newest first, filters and totals,
// a missing store named and never created, an outcome shown as lines, retries and purges that
// touch only what they say and leave a record with the OS user.
#include "adapter/jobs_commands.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "adapter/admin_audit.hpp"
#include "adapter/store/job_store.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"

namespace microcare::adapter {
namespace {

namespace fs = std::filesystem;
using test_support::TempDirectory;

constexpr std::int64_t kDay = 24 * 3600 * 1000;
// 2026-01-01T00:00:00Z
const TimePoint kJan1{std::chrono::milliseconds(1'767'225'600'000)};

class JobsCommandsTest : public ::testing::Test {
protected:
    JobsCommandsTest() { args_.store_path = dir_.File("microcare.db"); }

    // Enqueues one job per encounter, the i-th created i days after 1 January 2026.
    void Seed(std::initializer_list<const char*> encounters) {
        TimePoint now = kJan1;
        StoreOptions options;
        options.now = [&now] { return now; };
        auto store = std::move(*JobStore::Open(args_.store_path, options));
        for (const char* encounter : encounters) {
            NewJob job;
            job.trigger_key = std::string("k-") + encounter + std::to_string(seeded_);
            job.encounter = encounter;
            job.kind = "assess";
            job.payload = "{}";
            ASSERT_TRUE(store->Enqueue(std::move(job)));
            ++seeded_;
            now += std::chrono::milliseconds(kDay);
        }
        store->Close();
    }

    // Takes job `id` through a lease to done or dead, at `at`.
    void Finish(std::int64_t id, JobState state, TimePoint at, const std::string& outcome = "") {
        StoreOptions options;
        options.now = [at] { return at; };
        auto store = std::move(*JobStore::Open(args_.store_path, options));
        // Lease everything due, finish `id`, put the others back as they were.
        auto leased =
            *store->Lease(at + std::chrono::hours(24 * 365), std::chrono::seconds(1), 100);
        for (const Job& job : leased) {
            if (job.id == id) {
                if (state == JobState::kDone) {
                    ASSERT_TRUE(store->Complete(id, outcome));
                } else {
                    ASSERT_TRUE(store->DeadLetter(id, "refused by the EHR", outcome));
                }
            } else {
                ASSERT_TRUE(store->RetryLater(job.id, kJan1, job.last_error));
            }
        }
        store->Close();
    }

    int Run(int (*command)(const JobsArgs&, std::ostream&, std::ostream&)) {
        std::ostringstream o;
        std::ostringstream e;
        const int code = command(args_, o, e);
        out_ = o.str();
        err_ = e.str();
        return code;
    }

    TempDirectory dir_;
    JobsArgs args_;
    std::string out_;
    std::string err_;
    int seeded_ = 0;
};

// The first line after the header: the job an admin sees first.
std::string FirstRow(const std::string& out) {
    const auto start = out.find('\n') + 1;
    return out.substr(start, out.find('\n', start) - start);
}

TEST_F(JobsCommandsTest, ListShowsTheNewestFirstUpToTheLimit) {
    Seed({"Encounter/a", "Encounter/b", "Encounter/c"});
    args_.limit = 2;
    ASSERT_EQ(Run(RunJobsList), 0) << err_;
    EXPECT_TRUE(FirstRow(out_).starts_with("3\t")) << out_;
    EXPECT_EQ(out_.find("\n1\t"), std::string::npos) << "limit 2 shows jobs 3 and 2\n" << out_;
    EXPECT_NE(out_.find("\n2\t"), std::string::npos) << out_;
}

TEST_F(JobsCommandsTest, ListFiltersByStateSinceAndEncounterAndTotalsEachState) {
    Seed({"Encounter/a", "Encounter/b", "Encounter/a", "Encounter/c"});
    Finish(1, JobState::kDone, kJan1 + std::chrono::milliseconds(5 * kDay));
    Finish(2, JobState::kDead, kJan1 + std::chrono::milliseconds(6 * kDay));

    args_.encounter = "a";  // `id` or `Encounter/id`
    ASSERT_EQ(Run(RunJobsList), 0) << err_;
    EXPECT_NE(out_.find("\n3\t"), std::string::npos) << out_;
    EXPECT_NE(out_.find("\n1\t"), std::string::npos) << out_;
    EXPECT_EQ(out_.find("\n2\t"), std::string::npos) << out_;
    EXPECT_NE(out_.find("total: queued 2, running 0, done 1, dead 1"), std::string::npos) << out_;

    args_.encounter.clear();
    args_.state = "dead";
    ASSERT_EQ(Run(RunJobsList), 0) << err_;
    EXPECT_TRUE(FirstRow(out_).starts_with("2\tdead")) << out_;
    EXPECT_EQ(out_.find("\n1\t"), std::string::npos) << out_;

    args_.state.reset();
    args_.since = "2026-01-07";  // job 1 was last changed on the 6th, job 2 died on the 7th
    ASSERT_EQ(Run(RunJobsList), 0) << err_;
    EXPECT_EQ(out_.find("\n1\t"), std::string::npos) << out_;
    EXPECT_NE(out_.find("\n2\t"), std::string::npos) << out_;

    args_.since = "yesterday";
    EXPECT_EQ(Run(RunJobsList), 2);
    EXPECT_NE(err_.find("--since"), std::string::npos) << err_;
}

TEST_F(JobsCommandsTest, AStoreThatDoesNotExistIsNamedAndNeverCreated) {
    for (auto command : {RunJobsList, RunJobsShow}) {
        args_.id = 1;
        EXPECT_EQ(Run(command), 2);
        EXPECT_NE(err_.find(args_.store_path), std::string::npos) << err_;
        EXPECT_FALSE(fs::exists(args_.store_path));
    }
}

TEST_F(JobsCommandsTest, AReadLeavesTheDatabaseFileUnchanged) {
    Seed({"Encounter/a"});
    const auto before = fs::last_write_time(args_.store_path);
    const auto size = fs::file_size(args_.store_path);
    ASSERT_EQ(Run(RunJobsList), 0) << err_;
    EXPECT_EQ(fs::last_write_time(args_.store_path), before);
    EXPECT_EQ(fs::file_size(args_.store_path), size);
}

TEST_F(JobsCommandsTest, ShowPrintsTheOperationOutcomeAsLines) {
    Seed({"Encounter/a"});
    Finish(1, JobState::kDead, kJan1,
           R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid",)"
           R"("expression":["CarePlan.subject"],"diagnostics":"subject is required"},)"
           R"({"severity":"warning","code":"business-rule","details":{"text":"late"}}]})");
    args_.id = 1;
    ASSERT_EQ(Run(RunJobsShow), 0) << err_;
    EXPECT_NE(out_.find("error invalid CarePlan.subject: subject is required"), std::string::npos)
        << out_;
    EXPECT_NE(out_.find("warning business-rule -: late"), std::string::npos) << out_;
    EXPECT_EQ(out_.find("\\\""), std::string::npos) << "no escaped JSON\n" << out_;
}

TEST_F(JobsCommandsTest, RetryTakesSeveralIdsOrEveryDeadJobSinceAndNothingElse) {
    Seed({"Encounter/a", "Encounter/b", "Encounter/c", "Encounter/d"});
    Finish(1, JobState::kDead, kJan1 + std::chrono::milliseconds(kDay));
    Finish(2, JobState::kDead, kJan1 + std::chrono::milliseconds(9 * kDay));
    Finish(3, JobState::kDone, kJan1 + std::chrono::milliseconds(9 * kDay));

    args_.state = "dead";
    args_.since = "2026-01-05";
    ASSERT_EQ(Run(RunJobsRetry), 0) << err_;
    EXPECT_NE(out_.find("1 job(s) queued again: 2"), std::string::npos) << out_;

    auto store = std::move(*JobStore::Open(args_.store_path));
    EXPECT_EQ(store->Get(1)->state, JobState::kDead);
    EXPECT_EQ(store->Get(2)->state, JobState::kQueued);
    EXPECT_EQ(store->Get(3)->state, JobState::kDone);
    store->Close();

    args_ = JobsArgs{};
    args_.store_path = dir_.File("microcare.db");
    args_.ids = {1, 3};
    ASSERT_EQ(Run(RunJobsRetry), 0) << err_;
    args_.ids = {4};  // queued: not retried, and said so
    EXPECT_EQ(Run(RunJobsRetry), 2);
    EXPECT_NE(err_.find("job 4"), std::string::npos) << err_;
}

TEST_F(JobsCommandsTest, PurgeDeletesOnlyDoneJobsOlderThanTheDate) {
    Seed({"Encounter/a", "Encounter/b", "Encounter/c", "Encounter/d"});
    Finish(1, JobState::kDone, kJan1 + std::chrono::milliseconds(kDay));
    Finish(2, JobState::kDone, kJan1 + std::chrono::milliseconds(9 * kDay));
    Finish(3, JobState::kDead, kJan1 + std::chrono::milliseconds(kDay));

    args_.done_before = "2026-01-05";
    ASSERT_EQ(Run(RunJobsPurge), 0) << err_;
    EXPECT_NE(out_.find("1 done job(s) purged"), std::string::npos) << out_;
    auto store = std::move(*JobStore::Open(args_.store_path));
    EXPECT_FALSE(store->Get(1));
    EXPECT_TRUE(store->Get(2));
    EXPECT_TRUE(store->Get(3));
    EXPECT_TRUE(store->Get(4));
    store->Close();

    args_.done_before.clear();
    EXPECT_EQ(Run(RunJobsPurge), 2) << "a purge names its date";
}

}  // namespace
}  // namespace microcare::adapter

namespace microcare::adapter {
namespace {

TEST_F(JobsCommandsTest, ARetryIsInTheAuditTrailWithTheOsUser) {
    Seed({"Encounter/a"});
    Finish(1, JobState::kDead, kJan1);
    const std::string trail = dir_.File("audit.log");
    std::ofstream(dir_.File("microcare.json"))
        << R"({"server": {"auth": {"allowAnonymous": true}},
            "ehr": {"baseUrl": "http://127.0.0.1:9/fhir"}, "store": {"path": ")"
        << args_.store_path << R"("}, "audit": {"path": ")" << trail << R"("}})";
    args_.store_path.clear();
    args_.config_path = dir_.File("microcare.json");
    args_.ids = {1};
    ASSERT_EQ(Run(RunJobsRetry), 0) << err_;
    EXPECT_NE(out_.find("audit: recorded in " + trail), std::string::npos) << out_;
    std::ifstream in(trail);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_NE(text.find(R"("event":"jobs-retry")"), std::string::npos) << text;
    EXPECT_NE(text.find(R"("user":")" + OsUser() + "\""), std::string::npos) << text;
    EXPECT_NE(text.find(R"("jobs":"1")"), std::string::npos) << text;
}

}  // namespace
}  // namespace microcare::adapter
