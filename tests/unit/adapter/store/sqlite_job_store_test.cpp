// The job store's contract, run against both stores (JobStoreTest: SQLite and PostgreSQL):
// Enqueue's duplicate and conflict rules, subscription event numbers, Lease exclusivity per
// encounter, lease expiry, the job state transitions, group commit with per-task savepoints,
// many threads at once, and Close. SqliteJobStoreTest: the SQLite file's own schema, migration
// and read-only opening.
#include "adapter/store/sqlite_job_store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "adapter/store/pg_job_store.hpp"
#include "tests/unit/adapter/store/pg_test_database.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"

namespace microcare::adapter {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using test_support::ErrorOf;
using test_support::MakeJob;
using test_support::PgTestSchema;
using test_support::TempDirectory;
using test_support::ValueOf;

constexpr std::int64_t kStartMillis = 1'800'000'000'000;  // 2027-01-15, any fixed instant does

JobFilter Filter(std::optional<JobState> state, std::size_t limit) {
    JobFilter filter;
    filter.state = state;
    filter.limit = limit;
    return filter;
}

// SQL on the database file behind the store's back, as an admin's sqlite3 shell would.
std::string RawQuery(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    std::string value;
    if (sqlite3_open(path.c_str(), &db) == SQLITE_OK) {
        sqlite3_stmt* statement = nullptr;
        if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) == SQLITE_OK &&
            sqlite3_step(statement) == SQLITE_ROW) {
            value = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
        }
        sqlite3_finalize(statement);
    }
    sqlite3_close(db);
    return value;
}

void RawExec(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    char* message = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &message);
    EXPECT_EQ(rc, SQLITE_OK) << (message != nullptr ? message : "");
    sqlite3_free(message);
    sqlite3_close(db);
}

NewJob MessageJob(std::string trigger_key, std::string bundle_id, std::string header_id,
                  std::string response) {
    NewJob job = MakeJob(std::move(trigger_key));
    job.message = MessageRecord{std::move(bundle_id), std::move(header_id), std::move(response)};
    return job;
}

NewJob SubscriptionJob(std::string trigger_key, std::string subscription,
                       std::int64_t event_number) {
    NewJob job = MakeJob(std::move(trigger_key));
    job.kind = "subscription";
    job.subscription_event = SubscriptionEvent{std::move(subscription), event_number};
    return job;
}

// Starts an Enqueue whose result is collected later.
std::future<Result<Enqueued>> StartEnqueue(JobStore& store, NewJob job) {
    auto promise = std::make_shared<std::promise<Result<Enqueued>>>();
    auto future = promise->get_future();
    store.EnqueueAsync(std::move(job), [promise](Result<Enqueued> result) {
        promise->set_value(std::move(result));
    });
    return future;
}

// Holds the store's thread inside a callback until released, so that every call made meanwhile
// is queued and the next batch takes them all: batching becomes deterministic, with no sleeps.
// The gate itself is a job ("gate").
class StoreThreadGate {
public:
    explicit StoreThreadGate(JobStore& store) {
        store.EnqueueAsync(MakeJob("gate", "Encounter/gate"),
                           [this, released = released_](Result<Enqueued>) {
                               entered_.set_value();
                               released.wait();
                           });
        entered_.get_future().wait();
    }
    ~StoreThreadGate() { Release(); }

    void Release() {
        if (!released_flag_) {
            released_flag_ = true;
            release_.set_value();
        }
    }

private:
    std::promise<void> entered_;
    std::promise<void> release_;
    std::shared_future<void> released_ = release_.get_future().share();
    bool released_flag_ = false;
};

enum class Backend { kSqlite, kPostgres };

std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
    return info.param == Backend::kSqlite ? "Sqlite" : "Postgres";
}

// One store of either kind, on a database of the test's own (a file in a temporary directory,
// or a schema of its own on the tests' PostgreSQL server).
class StoreFixture : public ::testing::Test {
protected:
    explicit StoreFixture(Backend backend) : backend_(backend) {
        // Durability has a test of its own (a killed process); here fsyncs would only slow
        // the semantics down.
        options_.synchronous_full = false;
        options_.now = [this] { return Now(); };
    }

    void SetUp() override {
        if (backend_ == Backend::kPostgres && !pg_.available()) {
            GTEST_SKIP() << "PostgreSQL store not tested: " << pg_.skip_reason();
        }
        store_ = Open();
        ASSERT_NE(store_, nullptr);
    }

    std::string Location() const { return backend_ == Backend::kSqlite ? path_ : pg_.url(); }

    std::unique_ptr<JobStore> Open() {
        auto store = JobStore::Open(Location(), options_);
        if (!store) {
            ADD_FAILURE() << "open failed: " << store.error().message();
            return nullptr;
        }
        return std::move(*store);
    }

    void Reopen() {
        store_.reset();
        store_ = Open();
        ASSERT_NE(store_, nullptr);
    }

    // Write transactions the store has committed.
    std::uint64_t Commits() const {
        if (auto* sqlite = dynamic_cast<SqliteJobStore*>(store_.get())) {
            return sqlite->stats().commits;
        }
        if (auto* pg = dynamic_cast<PgJobStore*>(store_.get())) {
            return pg->stats().commits;
        }
        ADD_FAILURE() << "a store of unknown kind";
        return 0;
    }

    // A fault the store cannot tell from a real one: recording the message of Bundle "poison"
    // fails after its job was inserted, so only the task's savepoint can take that job out.
    void InjectMessageFault() {
        if (backend_ == Backend::kSqlite) {
            store_.reset();
            RawExec(path_,
                    "CREATE TRIGGER inject_fault AFTER INSERT ON messages WHEN NEW.bundle_id = "
                    "'poison' BEGIN SELECT RAISE(ABORT, 'injected fault'); END");
            store_ = Open();
            ASSERT_NE(store_, nullptr);
            return;
        }
        ASSERT_TRUE(
            pg_.Query("CREATE FUNCTION inject_fault() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                      "IF NEW.bundle_id = 'poison' THEN RAISE EXCEPTION 'injected fault'; END IF; "
                      "RETURN NEW; END $$; CREATE TRIGGER inject_fault AFTER INSERT ON messages "
                      "FOR EACH ROW EXECUTE FUNCTION inject_fault()"));
    }

    TimePoint Now() const { return TimePoint(milliseconds(now_millis_.load())); }
    void Advance(milliseconds by) { now_millis_ += by.count(); }

    std::int64_t Create(NewJob job) {
        auto enqueued = ValueOf(store_->Enqueue(std::move(job)));
        EXPECT_TRUE(enqueued.created);
        return enqueued.job_id;
    }

    std::set<std::string> TriggerKeys() {
        std::set<std::string> keys;
        for (const Job& job : ValueOf(store_->List(Filter(std::nullopt, 1000)))) {
            keys.insert(job.trigger_key);
        }
        return keys;
    }

    const Backend backend_;
    TempDirectory dir_;
    const std::string path_ = dir_.File("jobs.db");
    PgTestSchema pg_;
    std::atomic<std::int64_t> now_millis_{kStartMillis};
    StoreOptions options_;
    std::unique_ptr<JobStore> store_;
};

class JobStoreTest : public StoreFixture, public ::testing::WithParamInterface<Backend> {
protected:
    JobStoreTest() : StoreFixture(GetParam()) {}
};

INSTANTIATE_TEST_SUITE_P(Stores, JobStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

class SqliteJobStoreTest : public StoreFixture {
protected:
    SqliteJobStoreTest() : StoreFixture(Backend::kSqlite) {}
};

// ---- Opening

TEST_F(SqliteJobStoreTest, CreatesWalDatabaseAtCurrentSchemaVersion) {
    EXPECT_EQ(RawQuery(path_, "PRAGMA journal_mode"), "wal");
    EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "3");
    EXPECT_EQ(RawQuery(path_,
                       "SELECT count(*) FROM sqlite_schema WHERE name IN "
                       "('jobs', 'messages', 'subscriptions', 'jobs_due', "
                       "'jobs_running_encounter', 'admin_notes', 'poll_cursors')"),
              "7");
}

TEST_F(SqliteJobStoreTest, KeepsJobsAcrossReopen) {
    const auto id = Create(MakeJob("trigger-1"));
    Reopen();
    const Job job = ValueOf(store_->Get(id));
    EXPECT_EQ(job.trigger_key, "trigger-1");
    EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "3");
}

TEST_F(SqliteJobStoreTest, MigratesVersionTwoStoreKeepingItsJobs) {
    const auto id = Create(MakeJob("trigger-1"));
    store_.reset();
    // What release 2 of the schema left: no poll cursors yet.
    RawExec(path_, "DROP TABLE poll_cursors");
    RawExec(path_, "PRAGMA user_version = 2");
    Reopen();
    EXPECT_EQ(RawQuery(path_, "PRAGMA user_version"), "3");
    EXPECT_EQ(ValueOf(store_->Get(id)).trigger_key, "trigger-1");
    EXPECT_FALSE(ValueOf(store_->ReadPollCursor("encounters")).has_value());
}

NewJob Polled(const std::string& key, const std::string& encounter) {
    NewJob job = MakeJob(key, encounter);
    job.note = AdminNote{0, "trigger", {{"channel", "poll"}, {"encounter", encounter}}};
    return job;
}

// A trigger's audit record is committed with its job, and only with a new one: a job never
// exists without the record that names it, and a known trigger records nothing here.
TEST_P(JobStoreTest, ATriggersRecordIsCommittedWithItsJobOnlyWhenTheJobIsNew) {
    const Enqueued first = ValueOf(store_->Enqueue(Polled("message:1", "Encounter/a")));
    ASSERT_TRUE(first.created);
    const Enqueued again = ValueOf(store_->Enqueue(Polled("message:1", "Encounter/a")));
    EXPECT_FALSE(again.created);
    const auto notes = ValueOf(store_->PendingAdminNotes(10));
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_EQ(notes[0].event, "trigger");
    const std::vector<std::pair<std::string, std::string>> fields{
        {"channel", "poll"}, {"encounter", "Encounter/a"}, {"job", std::to_string(first.job_id)}};
    EXPECT_EQ(notes[0].fields, fields);
}

TEST_P(JobStoreTest, PollPageJournalsJobsNotesAndCursorTogether) {
    const TimePoint t1 = Now() + seconds(10);
    PollPage page{
        "encounters",
        {Polled("poll:Encounter/a|1", "Encounter/a"), Polled("poll:Encounter/b|1", "Encounter/b")},
        PollCursor{t1, Now()}};
    const auto first = ValueOf(store_->CommitPollPage(page));
    ASSERT_EQ(first.size(), 2u);
    EXPECT_TRUE(first[0].created && first[1].created);
    const auto cursor = ValueOf(store_->ReadPollCursor("encounters"));
    ASSERT_TRUE(cursor.has_value());
    EXPECT_EQ(cursor->high_water, t1);
    EXPECT_EQ(cursor->floor, Now());
    auto notes = ValueOf(store_->PendingAdminNotes(10));
    ASSERT_EQ(notes.size(), 2u);
    EXPECT_EQ(notes[1].event, "trigger");
    const std::vector<std::pair<std::string, std::string>> fields{
        {"channel", "poll"},
        {"encounter", "Encounter/b"},
        {"job", std::to_string(first[1].job_id)}};
    EXPECT_EQ(notes[1].fields, fields);

    // The same page again (the overlap window): no second job, no second note, and a cursor
    // that never moves back.
    page.cursor.high_water = Now();
    const auto again = ValueOf(store_->CommitPollPage(page));
    EXPECT_FALSE(again[0].created || again[1].created);
    EXPECT_EQ(again[1].job_id, first[1].job_id);
    EXPECT_EQ(ValueOf(store_->PendingAdminNotes(10)).size(), 2u);
    EXPECT_EQ(ValueOf(store_->ReadPollCursor("encounters"))->high_water, t1);
    EXPECT_EQ(TriggerKeys().size(), 2u);
}

TEST_P(JobStoreTest, FailedPollPageLeavesNeitherJobsNorCursor) {
    // A trigger whose message reuses a Bundle id fails (kConflict) mid-page: the page's first
    // job, its note and the cursor must all be undone with it.
    NewJob message = MakeJob("message:1", "Encounter/m");
    message.message = MessageRecord{"bundle-1", "header-1", "{}"};
    Create(message);
    NewJob clash = Polled("poll:Encounter/m|1", "Encounter/m");
    clash.message = MessageRecord{"bundle-1", "header-2", "{}"};
    PollPage page{"encounters",
                  {Polled("poll:Encounter/a|1", "Encounter/a"), clash},
                  PollCursor{Now() + seconds(5), Now()}};
    EXPECT_EQ(ErrorOf(store_->CommitPollPage(page)), Error::kConflict);
    EXPECT_FALSE(ValueOf(store_->ReadPollCursor("encounters")).has_value());
    EXPECT_EQ(TriggerKeys(), std::set<std::string>{"message:1"});
    EXPECT_TRUE(ValueOf(store_->PendingAdminNotes(10)).empty());
}

TEST_F(SqliteJobStoreTest, ReadOnlyOpenNeitherCreatesNorWrites) {
    StoreOptions read_only = options_;
    read_only.read_only = true;
    EXPECT_EQ(ErrorOf(SqliteJobStore::Open(dir_.File("absent.db"), read_only)), Error::kNotFound);
    EXPECT_FALSE(std::filesystem::exists(dir_.File("absent.db")));
    const auto id = Create(MakeJob("trigger-1"));
    auto reader = ValueOf(SqliteJobStore::Open(path_, read_only));
    EXPECT_EQ(ValueOf(reader->Get(id)).trigger_key, "trigger-1");
    EXPECT_EQ(ErrorOf(reader->Retry(id, Now())), Error::kStoreFailed);
}

TEST_P(JobStoreTest, AdminChangesCarryTheirNoteInTheSameCommit) {
    const auto a = Create(MakeJob("a", "Encounter/a"));
    const auto b = Create(MakeJob("b", "Encounter/b"));
    const auto leased = ValueOf(store_->Lease(Now(), seconds(30), 10));
    ASSERT_EQ(leased.size(), 2u);
    ASSERT_TRUE(store_->Complete(a, "ok"));
    ASSERT_TRUE(store_->Complete(b, "ok"));
    AdminNote note;
    note.event = "jobs-retry";
    note.fields.emplace_back("user", "alice");
    EXPECT_EQ(ValueOf(store_->RetryJobs({a, 999}, Now(), note)), std::vector<std::int64_t>{a});
    note.event = "jobs-purge";
    EXPECT_EQ(ValueOf(store_->PurgeDone(Now() + seconds(1), note)), 1u);  // b, not the queued a
    EXPECT_EQ(ErrorOf(store_->Get(b)), Error::kNotFound);
    const auto notes = ValueOf(store_->PendingAdminNotes(10));
    ASSERT_EQ(notes.size(), 2u);
    EXPECT_EQ(notes[0].event, "jobs-retry");
    const std::vector<std::pair<std::string, std::string>> retry_fields{
        {"user", "alice"}, {"jobs", std::to_string(a)}, {"count", "1"}};
    EXPECT_EQ(notes[0].fields, retry_fields);
    ASSERT_TRUE(store_->ForgetAdminNotes(notes[0].id));
    EXPECT_EQ(ValueOf(store_->PendingAdminNotes(10)).size(), 1u);
}

TEST_F(SqliteJobStoreTest, RefusesDatabaseOfNewerSchema) {
    store_.reset();
    RawExec(path_, "PRAGMA user_version = 99");
    auto store = SqliteJobStore::Open(path_, options_);
    EXPECT_EQ(ErrorOf(store), Error::kStoreFailed);
}

TEST_F(SqliteJobStoreTest, OpenInMissingDirectoryFails) {
    auto store = JobStore::Open(dir_.File("no/such/dir/jobs.db"), options_);
    EXPECT_EQ(ErrorOf(store), Error::kStoreFailed);
}

// ---- Enqueue

TEST_P(JobStoreTest, EnqueueCreatesQueuedJobDueNow) {
    NewJob job = MakeJob("trigger-1", "Encounter/42");
    job.payload = R"({"a":1})";
    const Enqueued enqueued = ValueOf(store_->Enqueue(job));
    EXPECT_TRUE(enqueued.created);
    EXPECT_GT(enqueued.job_id, 0);
    EXPECT_EQ(enqueued.stored_response, "");

    const Job stored = ValueOf(store_->Get(enqueued.job_id));
    EXPECT_EQ(stored.trigger_key, "trigger-1");
    EXPECT_EQ(stored.encounter, "Encounter/42");
    EXPECT_EQ(stored.kind, "process-message");
    EXPECT_EQ(stored.payload, R"({"a":1})");
    EXPECT_EQ(stored.state, JobState::kQueued);
    EXPECT_EQ(stored.attempts, 0);
    EXPECT_EQ(stored.created_at, Now());
    EXPECT_EQ(stored.updated_at, Now());
    EXPECT_EQ(stored.next_attempt_at, Now());
    EXPECT_FALSE(stored.lease_until.has_value());
}

TEST_P(JobStoreTest, KnownTriggerKeyReturnsExistingJob) {
    const auto id = Create(MakeJob("trigger-1"));
    NewJob again = MakeJob("trigger-1", "Encounter/other");
    again.payload = "{}";
    const Enqueued enqueued = ValueOf(store_->Enqueue(again));
    EXPECT_FALSE(enqueued.created);
    EXPECT_EQ(enqueued.job_id, id);
    EXPECT_EQ(ValueOf(store_->Get(id)).encounter, "Encounter/1");  // the first one stays
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kQueued)), 1u);
}

TEST_P(JobStoreTest, ResentMessageReturnsStoredResponseAndNoSecondJob) {
    const auto id = Create(MessageJob("message-1", "bundle-1", "header-1", "first response"));
    // Found by its Bundle and MessageHeader ids, whatever trigger key the re-send carries.
    const Enqueued resent =
        ValueOf(store_->Enqueue(MessageJob("message-2", "bundle-1", "header-1", "new response")));
    EXPECT_FALSE(resent.created);
    EXPECT_EQ(resent.job_id, id);
    EXPECT_EQ(resent.stored_response, "first response");
    EXPECT_EQ(TriggerKeys(), (std::set<std::string>{"message-1"}));
}

TEST_P(JobStoreTest, SameBundleWithOtherHeaderIsConflictAndWritesNothing) {
    Create(MessageJob("message-1", "bundle-1", "header-1", "response"));
    NewJob reused = MessageJob("message-2", "bundle-1", "header-2", "response");
    reused.subscription_event = SubscriptionEvent{"Subscription/s", 7};

    EXPECT_EQ(ErrorOf(store_->Enqueue(reused)), Error::kConflict);
    EXPECT_EQ(TriggerKeys(), (std::set<std::string>{"message-1"}));
    EXPECT_EQ(ValueOf(store_->LastEventNumber("Subscription/s")), 0);
}

TEST_P(JobStoreTest, KnownTriggerRecordsANewMessageForLaterResends) {
    const auto id = Create(MakeJob("trigger-1"));
    const Enqueued first =
        ValueOf(store_->Enqueue(MessageJob("trigger-1", "bundle-1", "header-1", "response")));
    EXPECT_FALSE(first.created);
    EXPECT_EQ(first.job_id, id);
    const Enqueued resent =
        ValueOf(store_->Enqueue(MessageJob("trigger-2", "bundle-1", "header-1", "other")));
    EXPECT_FALSE(resent.created);
    EXPECT_EQ(resent.job_id, id);
    EXPECT_EQ(resent.stored_response, "response");
}

TEST_P(JobStoreTest, SubscriptionKeepsItsHighestEventNumber) {
    EXPECT_EQ(ValueOf(store_->LastEventNumber("Subscription/s")), 0);
    Create(SubscriptionJob("event-5", "Subscription/s", 5));
    EXPECT_EQ(ValueOf(store_->LastEventNumber("Subscription/s")), 5);
    Create(SubscriptionJob("event-3", "Subscription/s", 3));  // late, out of order
    EXPECT_EQ(ValueOf(store_->LastEventNumber("Subscription/s")), 5);
    Create(SubscriptionJob("event-9", "Subscription/s", 9));
    EXPECT_EQ(ValueOf(store_->LastEventNumber("Subscription/s")), 9);
    EXPECT_EQ(ValueOf(store_->LastEventNumber("Subscription/other")), 0);
}

// ---- Lease

TEST_P(JobStoreTest, LeaseTakesDueJobsLongestDueFirst) {
    const auto first = Create(MakeJob("a", "Encounter/1"));
    Advance(seconds(1));
    const auto second = Create(MakeJob("b", "Encounter/2"));
    Advance(seconds(1));
    const auto third = Create(MakeJob("c", "Encounter/3"));

    const TimePoint lease_at = Now() - seconds(1);  // the third is not due yet
    const auto leased = ValueOf(store_->Lease(lease_at, seconds(30), 10));
    ASSERT_EQ(leased.size(), 2u);
    EXPECT_EQ(leased[0].id, first);
    EXPECT_EQ(leased[1].id, second);
    for (const Job& job : leased) {
        EXPECT_EQ(job.state, JobState::kRunning);
        EXPECT_EQ(job.attempts, 1);
        EXPECT_EQ(job.lease_until, lease_at + seconds(30));
        EXPECT_EQ(job.updated_at, lease_at);
    }
    EXPECT_EQ(ValueOf(store_->Get(first)).state, JobState::kRunning);

    const auto later = ValueOf(store_->Lease(Now(), seconds(30), 10));
    ASSERT_EQ(later.size(), 1u);
    EXPECT_EQ(later[0].id, third);
}

TEST_P(JobStoreTest, LeaseTakesAtMostMax) {
    for (int i = 0; i < 5; ++i) {
        Create(MakeJob("job-" + std::to_string(i), "Encounter/" + std::to_string(i)));
    }
    EXPECT_EQ(ValueOf(store_->Lease(Now(), seconds(30), 2)).size(), 2u);
    EXPECT_EQ(ValueOf(store_->Lease(Now(), seconds(30), 0)).size(), 0u);
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kQueued)), 3u);
}

TEST_P(JobStoreTest, LeaseNeverRunsTwoJobsOfOneEncounter) {
    const auto a1 = Create(MakeJob("a1", "Encounter/a"));
    const auto a2 = Create(MakeJob("a2", "Encounter/a"));
    const auto b1 = Create(MakeJob("b1", "Encounter/b"));

    // Not two of one encounter in the same call...
    const auto leased = ValueOf(store_->Lease(Now(), minutes(1), 10));
    ASSERT_EQ(leased.size(), 2u);
    EXPECT_EQ(leased[0].id, a1);
    EXPECT_EQ(leased[1].id, b1);
    // ...nor while one of them runs...
    EXPECT_TRUE(ValueOf(store_->Lease(Now(), minutes(1), 10)).empty());
    // ...but as soon as it is finished.
    ASSERT_TRUE(store_->Complete(a1, "ok"));
    const auto next = ValueOf(store_->Lease(Now(), minutes(1), 10));
    ASSERT_EQ(next.size(), 1u);
    EXPECT_EQ(next[0].id, a2);
}

TEST_P(JobStoreTest, ExpiredLeaseNoLongerBlocksItsEncounter) {
    const auto first = Create(MakeJob("a1", "Encounter/a"));
    const auto second = Create(MakeJob("a2", "Encounter/a"));
    ASSERT_EQ(ValueOf(store_->Lease(Now(), seconds(10), 10)).size(), 1u);

    EXPECT_TRUE(ValueOf(store_->Lease(Now() + seconds(10), seconds(10), 10)).empty());
    const auto after_expiry = ValueOf(store_->Lease(Now() + seconds(11), seconds(10), 10));
    ASSERT_EQ(after_expiry.size(), 1u);
    EXPECT_EQ(after_expiry[0].id, second);
    EXPECT_EQ(ValueOf(store_->Get(first)).state, JobState::kRunning);  // until requeued
}

TEST_P(JobStoreTest, RequeueExpiredRequeuesOnlyExpiredLeases) {
    const auto short_lease = Create(MakeJob("a", "Encounter/a"));
    ASSERT_EQ(ValueOf(store_->Lease(Now(), seconds(10), 1)).size(), 1u);
    const auto long_lease = Create(MakeJob("b", "Encounter/b"));
    ASSERT_EQ(ValueOf(store_->Lease(Now(), minutes(10), 1)).size(), 1u);

    const TimePoint later = Now() + seconds(30);
    EXPECT_EQ(ValueOf(store_->RequeueExpired(later)), 1u);
    const Job requeued = ValueOf(store_->Get(short_lease));
    EXPECT_EQ(requeued.state, JobState::kQueued);
    EXPECT_EQ(requeued.next_attempt_at, later);
    EXPECT_FALSE(requeued.lease_until.has_value());
    EXPECT_EQ(requeued.attempts, 1);
    EXPECT_EQ(ValueOf(store_->Get(long_lease)).state, JobState::kRunning);
    EXPECT_EQ(ValueOf(store_->RequeueExpired(later)), 0u);

    const auto again = ValueOf(store_->Lease(later, seconds(10), 10));
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0].id, short_lease);
    EXPECT_EQ(again[0].attempts, 2);
}

TEST_P(JobStoreTest, ARenewedLeaseKeepsItsJobAndOnlyItsOwnerRenewsIt) {
    const auto id = Create(MakeJob("a", "Encounter/a"));
    const auto first = ValueOf(store_->Lease(Now(), seconds(10), 1));
    ASSERT_EQ(first.size(), 1u);
    Advance(seconds(8));
    ASSERT_TRUE(store_->ExtendLease(id, first[0].attempts, Now() + seconds(10)));
    EXPECT_EQ(ValueOf(store_->Get(id)).lease_until, Now() + seconds(10));
    // Past the first lease, within the renewed one: not taken over.
    EXPECT_EQ(ValueOf(store_->RequeueExpired(Now() + seconds(5))), 0u);
    // A renewal never shortens a lease.
    ASSERT_TRUE(store_->ExtendLease(id, first[0].attempts, Now()));
    EXPECT_EQ(ValueOf(store_->Get(id)).lease_until, Now() + seconds(10));
    // Once it has run out and the job was taken over, the old attempt renews nothing.
    Advance(seconds(11));
    ASSERT_EQ(ValueOf(store_->RequeueExpired(Now())), 1u);
    const auto second = ValueOf(store_->Lease(Now(), seconds(10), 1));
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(ErrorOf(store_->ExtendLease(id, first[0].attempts, Now() + minutes(5))),
              Error::kConflict);
    EXPECT_EQ(ValueOf(store_->Get(id)).lease_until, Now() + seconds(10));
    ASSERT_TRUE(store_->Complete(id, "ok", second[0].attempts));
    EXPECT_EQ(ErrorOf(store_->ExtendLease(id, second[0].attempts, Now() + seconds(10))),
              Error::kConflict);  // done: nothing to keep
}

// ---- Finishing a job

TEST_P(JobStoreTest, CompleteMarksRunningJobDone) {
    const auto id = Create(MakeJob("a"));
    ASSERT_EQ(ValueOf(store_->Lease(Now(), seconds(30), 1)).size(), 1u);
    Advance(seconds(5));
    ASSERT_TRUE(store_->Complete(id, "CarePlan/7 written"));
    const Job job = ValueOf(store_->Get(id));
    EXPECT_EQ(job.state, JobState::kDone);
    EXPECT_EQ(job.outcome, "CarePlan/7 written");
    EXPECT_EQ(job.updated_at, Now());
    EXPECT_FALSE(job.lease_until.has_value());
}

TEST_P(JobStoreTest, AWorkerWhoseLeaseRanOutCannotOverwriteTheNewAttempt) {
    const auto id = Create(MakeJob("a"));
    const auto first = ValueOf(store_->Lease(Now(), seconds(30), 1));
    ASSERT_EQ(first.size(), 1u);
    Advance(seconds(31));  // the first worker stalled past its lease
    ASSERT_EQ(ValueOf(store_->RequeueExpired(Now())), 1u);
    const auto second = ValueOf(store_->Lease(Now(), seconds(30), 1));
    ASSERT_EQ(second.size(), 1u);
    ASSERT_EQ(second[0].attempts, first[0].attempts + 1);
    // The stale worker's outcome is refused, whichever it is...
    EXPECT_EQ(ErrorOf(store_->Complete(id, "stale", first[0].attempts)), Error::kConflict);
    EXPECT_EQ(ErrorOf(store_->RetryLater(id, Now(), "stale", first[0].attempts)), Error::kConflict);
    EXPECT_EQ(ErrorOf(store_->DeadLetter(id, "stale", "", first[0].attempts)), Error::kConflict);
    EXPECT_EQ(ValueOf(store_->Get(id)).state, JobState::kRunning);
    // ...and the current one's is recorded.
    ASSERT_TRUE(store_->Complete(id, "fresh", second[0].attempts));
    EXPECT_EQ(ValueOf(store_->Get(id)).outcome, "fresh");
}

TEST_P(JobStoreTest, FinishingAJobThatIsNotRunningIsRefused) {
    const auto id = Create(MakeJob("a"));
    EXPECT_EQ(ErrorOf(store_->Complete(id, "ok")), Error::kConflict);
    EXPECT_EQ(ErrorOf(store_->RetryLater(id, Now(), "e")), Error::kConflict);
    EXPECT_EQ(ErrorOf(store_->DeadLetter(id, "r", "o")), Error::kConflict);
    EXPECT_EQ(ErrorOf(store_->Complete(id + 100, "ok")), Error::kNotFound);
    EXPECT_EQ(ErrorOf(store_->RetryLater(id + 100, Now(), "e")), Error::kNotFound);
    EXPECT_EQ(ErrorOf(store_->DeadLetter(id + 100, "r", "o")), Error::kNotFound);
    EXPECT_EQ(ValueOf(store_->Get(id)).state, JobState::kQueued);
}

TEST_P(JobStoreTest, RetryLaterQueuesJobUntilItsNextAttempt) {
    const auto id = Create(MakeJob("a"));
    ASSERT_EQ(ValueOf(store_->Lease(Now(), seconds(30), 1)).size(), 1u);
    const TimePoint next_attempt = Now() + minutes(1);
    ASSERT_TRUE(store_->RetryLater(id, next_attempt, "EHR unreachable"));

    const Job job = ValueOf(store_->Get(id));
    EXPECT_EQ(job.state, JobState::kQueued);
    EXPECT_EQ(job.next_attempt_at, next_attempt);
    EXPECT_EQ(job.last_error, "EHR unreachable");
    EXPECT_FALSE(job.lease_until.has_value());

    EXPECT_TRUE(ValueOf(store_->Lease(next_attempt - milliseconds(1), seconds(30), 1)).empty());
    const auto leased = ValueOf(store_->Lease(next_attempt, seconds(30), 1));
    ASSERT_EQ(leased.size(), 1u);
    EXPECT_EQ(leased[0].attempts, 2);
}

TEST_P(JobStoreTest, DeadLetterKeepsReasonAndOutcome) {
    const auto id = Create(MakeJob("a"));
    ASSERT_EQ(ValueOf(store_->Lease(Now(), seconds(30), 1)).size(), 1u);
    ASSERT_TRUE(store_->DeadLetter(id, "EHR refused the transaction", R"({"issue":[]})"));

    const Job job = ValueOf(store_->Get(id));
    EXPECT_EQ(job.state, JobState::kDead);
    EXPECT_EQ(job.last_error, "EHR refused the transaction");
    EXPECT_EQ(job.outcome, R"({"issue":[]})");
    EXPECT_TRUE(ValueOf(store_->Lease(Now() + hours(1), seconds(30), 1)).empty());
}

TEST_P(JobStoreTest, RetryRequeuesDoneAndDeadJobsWithAttemptsReset) {
    const auto done = Create(MakeJob("a", "Encounter/a"));
    const auto dead = Create(MakeJob("b", "Encounter/b"));
    ASSERT_EQ(ValueOf(store_->Lease(Now(), seconds(30), 2)).size(), 2u);
    ASSERT_TRUE(store_->Complete(done, "ok"));
    ASSERT_TRUE(store_->DeadLetter(dead, "gave up", ""));

    const TimePoint retry_at = Now() + hours(2);
    for (const auto id : {done, dead}) {
        ASSERT_TRUE(store_->Retry(id, retry_at));
        const Job job = ValueOf(store_->Get(id));
        EXPECT_EQ(job.state, JobState::kQueued);
        EXPECT_EQ(job.attempts, 0);
        EXPECT_EQ(job.next_attempt_at, retry_at);
        EXPECT_EQ(job.updated_at, retry_at);
    }
    EXPECT_EQ(ValueOf(store_->Lease(retry_at, seconds(30), 10)).size(), 2u);
}

TEST_P(JobStoreTest, RetryOfQueuedOrRunningJobIsConflict) {
    const auto queued = Create(MakeJob("a", "Encounter/a"));
    EXPECT_EQ(ErrorOf(store_->Retry(queued, Now())), Error::kConflict);
    ASSERT_EQ(ValueOf(store_->Lease(Now(), seconds(30), 1)).size(), 1u);
    EXPECT_EQ(ErrorOf(store_->Retry(queued, Now())), Error::kConflict);
    EXPECT_EQ(ErrorOf(store_->Retry(queued + 1, Now())), Error::kNotFound);
}

// ---- Queries

TEST_P(JobStoreTest, GetOfUnknownJobIsNotFound) {
    EXPECT_EQ(ErrorOf(store_->Get(12345)), Error::kNotFound);
}

TEST_P(JobStoreTest, ListAndCountByState) {
    for (int i = 0; i < 6; ++i) {
        Create(MakeJob("job-" + std::to_string(i), "Encounter/" + std::to_string(i)));
    }
    const auto leased = ValueOf(store_->Lease(Now(), seconds(30), 3));
    ASSERT_EQ(leased.size(), 3u);
    ASSERT_TRUE(store_->Complete(leased[0].id, "ok"));
    ASSERT_TRUE(store_->DeadLetter(leased[1].id, "gave up", ""));

    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kQueued)), 3u);
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kRunning)), 1u);
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kDone)), 1u);
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kDead)), 1u);

    const auto queued = ValueOf(store_->List(Filter(JobState::kQueued, 2)));
    ASSERT_EQ(queued.size(), 2u);
    EXPECT_LT(queued[0].id, queued[1].id);
    for (const Job& job : queued) {
        EXPECT_EQ(job.state, JobState::kQueued);
    }
    const auto dead = ValueOf(store_->List(Filter(JobState::kDead, 10)));
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].id, leased[1].id);
    EXPECT_EQ(ValueOf(store_->List(Filter(std::nullopt, 100))).size(), 6u);
}

// The age /metrics shows: the oldest job not yet done or dead, running or queued for a retry.
TEST_P(JobStoreTest, OldestWaitingIsTheOldestJobNotYetDoneOrDead) {
    EXPECT_FALSE(ValueOf(store_->OldestWaiting()).has_value());  // nothing waits
    const TimePoint first_created = Now();
    const auto first = Create(MakeJob("first", "Encounter/1"));
    Advance(seconds(60));
    const TimePoint second_created = Now();
    Create(MakeJob("second", "Encounter/2"));
    Advance(seconds(60));
    EXPECT_EQ(ValueOf(store_->OldestWaiting()), first_created);

    // Running, then queued again for a retry: still waiting.
    auto leased = ValueOf(store_->Lease(Now(), seconds(30), 1));
    ASSERT_EQ(leased.size(), 1u);
    ASSERT_EQ(leased[0].id, first);
    EXPECT_EQ(ValueOf(store_->OldestWaiting()), first_created);
    ASSERT_TRUE(store_->RetryLater(first, Now() + seconds(10), "the EHR is down"));
    EXPECT_EQ(ValueOf(store_->OldestWaiting()), first_created);

    Advance(seconds(10));
    leased = ValueOf(store_->Lease(Now(), seconds(30), 2));
    ASSERT_EQ(leased.size(), 2u);
    const Job& second = leased[0].id == first ? leased[1] : leased[0];
    ASSERT_TRUE(store_->Complete(first, "done"));
    EXPECT_EQ(ValueOf(store_->OldestWaiting()), second_created);  // running
    ASSERT_TRUE(store_->DeadLetter(second.id, "refused", ""));
    EXPECT_FALSE(ValueOf(store_->OldestWaiting()).has_value());
}

// ---- Group commit

TEST_P(JobStoreTest, WritesQueuedTogetherShareOneCommit) {
    StoreThreadGate gate(*store_);
    const auto commits_before = Commits();
    std::vector<std::future<Result<Enqueued>>> results;
    for (int i = 0; i < 50; ++i) {
        results.push_back(StartEnqueue(*store_, MakeJob("job-" + std::to_string(i))));
    }
    gate.Release();
    for (auto& result : results) {
        EXPECT_TRUE(ValueOf(result.get()).created);
    }
    EXPECT_EQ(Commits(), commits_before + 1);
}

// What every worker does at the end of a job goes through the asynchronous calls, so that
// jobs ending together (many workers, one store thread) share one commit too.
TEST_P(JobStoreTest, JobsEndingTogetherShareOneCommit) {
    for (int i = 0; i < 30; ++i) {
        ValueOf(store_->Enqueue(
            MakeJob("job-" + std::to_string(i), "Encounter/e" + std::to_string(i))));
    }
    const auto leased = ValueOf(store_->Lease(Now(), seconds(30), 30));
    ASSERT_EQ(leased.size(), 30u);
    std::vector<std::future<Result<void>>> results;
    const auto collect = [&results] {
        auto promise = std::make_shared<std::promise<Result<void>>>();
        results.push_back(promise->get_future());
        return [promise](Result<void> result) { promise->set_value(std::move(result)); };
    };
    StoreThreadGate gate(*store_);
    const auto commits_before = Commits();
    for (int i = 0; i < 30; ++i) {
        const Job& job = leased[i];
        if (i % 3 == 0) store_->CompleteAsync(job.id, "done", job.attempts, collect());
        if (i % 3 == 1) {
            store_->RetryLaterAsync(job.id, Now() + seconds(5), "later", job.attempts, collect());
        }
        if (i % 3 == 2) store_->DeadLetterAsync(job.id, "refused", "", job.attempts, collect());
    }
    gate.Release();
    for (auto& result : results) EXPECT_TRUE(result.get());
    EXPECT_EQ(Commits(), commits_before + 1);
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kDone)), 10u);
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kQueued)), 10u + 1u);  // and the gate
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kDead)), 10u);
}

TEST_P(JobStoreTest, BatchTakesAtMostMaxBatchSize) {
    options_.max_batch_size = 4;
    Reopen();
    StoreThreadGate gate(*store_);
    const auto commits_before = Commits();
    std::vector<std::future<Result<Enqueued>>> results;
    for (int i = 0; i < 10; ++i) {
        results.push_back(StartEnqueue(*store_, MakeJob("job-" + std::to_string(i))));
    }
    gate.Release();
    for (auto& result : results) {
        EXPECT_TRUE(ValueOf(result.get()).created);
    }
    EXPECT_EQ(Commits(), commits_before + 3);  // 4 + 4 + 2
}

TEST_P(JobStoreTest, FailingTaskInABatchIsUndoneAloneAndOthersCommit) {
    Create(MessageJob("message-1", "bundle-1", "header-1", "response"));
    InjectMessageFault();

    StoreThreadGate gate(*store_);
    const auto commits_before = Commits();
    auto good_first = StartEnqueue(*store_, MakeJob("good-1"));
    auto poisoned = StartEnqueue(*store_, MessageJob("poisoned", "poison", "header", "r"));
    auto conflict = StartEnqueue(*store_, MessageJob("conflict", "bundle-1", "header-2", "r"));
    auto good_second = StartEnqueue(*store_, SubscriptionJob("good-2", "Subscription/s", 3));
    gate.Release();

    EXPECT_TRUE(ValueOf(good_first.get()).created);
    EXPECT_EQ(ErrorOf(poisoned.get()), Error::kStoreFailed);
    EXPECT_EQ(ErrorOf(conflict.get()), Error::kConflict);
    EXPECT_TRUE(ValueOf(good_second.get()).created);
    EXPECT_EQ(Commits(), commits_before + 1);

    EXPECT_EQ(TriggerKeys(), (std::set<std::string>{"message-1", "gate", "good-1", "good-2"}));
    EXPECT_EQ(ValueOf(store_->LastEventNumber("Subscription/s")), 3);
}

// ---- Many threads

TEST_P(JobStoreTest, ManyThreadsEnqueueEveryTriggerExactlyOnce) {
    constexpr int kThreads = 16;
    constexpr int kOwnTriggers = 50;
    constexpr int kSharedTriggers = 20;  // every thread sends these: re-sends racing each other

    std::mutex mutex;
    std::map<std::string, std::set<std::int64_t>> ids_by_trigger;
    std::atomic<int> created{0};
    std::atomic<int> failed{0};
    auto record = [&](const std::string& trigger, Result<Enqueued> result) {
        if (!result) {
            ++failed;
            return;
        }
        created += result->created ? 1 : 0;
        std::lock_guard lock(mutex);
        ids_by_trigger[trigger].insert(result->job_id);
    };
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kOwnTriggers; ++i) {
                const std::string own = "own-" + std::to_string(t) + "-" + std::to_string(i);
                record(own, store_->Enqueue(MakeJob(own, "Encounter/" + std::to_string(t))));
                if (i < kSharedTriggers) {
                    const std::string shared = "shared-" + std::to_string(i);
                    record(shared, store_->Enqueue(MakeJob(shared)));
                }
            }
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }

    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(created.load(), kThreads * kOwnTriggers + kSharedTriggers);
    EXPECT_EQ(ids_by_trigger.size(),
              static_cast<std::size_t>(kThreads * kOwnTriggers + kSharedTriggers));
    for (const auto& [trigger, ids] : ids_by_trigger) {
        EXPECT_EQ(ids.size(), 1u) << trigger;
    }
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kQueued)),
              static_cast<std::size_t>(kThreads * kOwnTriggers + kSharedTriggers));
}

TEST_P(JobStoreTest, ConcurrentWorkersNeverHoldTwoJobsOfOneEncounter) {
    constexpr int kEncounters = 10;
    constexpr int kJobsPerEncounter = 8;
    constexpr int kWorkers = 6;
    constexpr int kTotal = kEncounters * kJobsPerEncounter;
    for (int j = 0; j < kJobsPerEncounter; ++j) {
        for (int e = 0; e < kEncounters; ++e) {
            Create(MakeJob("job-" + std::to_string(e) + "-" + std::to_string(j),
                           "Encounter/" + std::to_string(e)));
        }
    }

    std::mutex mutex;
    std::set<std::string> held;  // encounters some worker holds a job of
    std::atomic<int> completed{0};
    std::atomic<bool> overlap{false};
    std::atomic<bool> failed{false};
    auto work = [&] {
        while (completed.load() < kTotal && !failed.load()) {
            auto leased = store_->Lease(Now(), hours(1), 3);
            if (!leased) {
                failed = true;
                return;
            }
            if (leased->empty()) {
                std::this_thread::yield();  // the rest is held by other workers
                continue;
            }
            {
                std::lock_guard lock(mutex);
                for (const Job& job : *leased) {
                    overlap = overlap || !held.insert(job.encounter).second;
                }
            }
            for (const Job& job : *leased) {
                // Let go before completing: once Complete commits, another worker may take the
                // encounter's next job at once.
                {
                    std::lock_guard lock(mutex);
                    held.erase(job.encounter);
                }
                if (!store_->Complete(job.id, "ok")) {
                    failed = true;
                }
                ++completed;
            }
        }
    };
    std::vector<std::thread> workers;
    for (int w = 0; w < kWorkers; ++w) {
        workers.emplace_back(work);
    }
    for (auto& worker : workers) {
        worker.join();
    }

    EXPECT_FALSE(failed.load());
    EXPECT_FALSE(overlap.load());
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kDone)), static_cast<std::size_t>(kTotal));
    for (const Job& job : ValueOf(store_->List(Filter(JobState::kDone, 1000)))) {
        EXPECT_EQ(job.attempts, 1) << job.trigger_key;
    }
}

// ---- Close

TEST_P(JobStoreTest, CloseFinishesAcceptedWritesThenRefusesCalls) {
    constexpr int kJobs = 300;
    std::atomic<int> succeeded{0};
    for (int i = 0; i < kJobs; ++i) {
        store_->EnqueueAsync(MakeJob("job-" + std::to_string(i)),
                             [&](Result<Enqueued> result) { succeeded += result ? 1 : 0; });
    }
    store_->Close();
    EXPECT_EQ(succeeded.load(), kJobs);

    EXPECT_EQ(ErrorOf(store_->Get(1)), Error::kShuttingDown);
    EXPECT_EQ(ErrorOf(store_->Enqueue(MakeJob("late"))), Error::kShuttingDown);
    EXPECT_EQ(ErrorOf(store_->Lease(Now(), seconds(1), 1)), Error::kShuttingDown);
    EXPECT_EQ(ErrorOf(store_->CountByState(JobState::kQueued)), Error::kShuttingDown);
    std::optional<Error> async_error;
    store_->EnqueueAsync(MakeJob("late"),
                         [&](Result<Enqueued> result) { async_error = ErrorOf(result); });
    EXPECT_EQ(async_error, Error::kShuttingDown);
    store_->Close();  // twice is harmless

    Reopen();
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kQueued)), static_cast<std::size_t>(kJobs));
}

TEST_P(JobStoreTest, DestructorFinishesAcceptedWrites) {
    std::atomic<int> succeeded{0};
    for (int i = 0; i < 100; ++i) {
        store_->EnqueueAsync(MakeJob("job-" + std::to_string(i)),
                             [&](Result<Enqueued> result) { succeeded += result ? 1 : 0; });
    }
    store_.reset();
    EXPECT_EQ(succeeded.load(), 100);
    store_ = Open();
    ASSERT_NE(store_, nullptr);
    EXPECT_EQ(ValueOf(store_->CountByState(JobState::kQueued)), 100u);
}

TEST_P(JobStoreTest, CloseFromACallbackStopsTheStore) {
    std::promise<void> closed;
    store_->EnqueueAsync(MakeJob("a"), [&](Result<Enqueued>) {
        store_->Close();
        closed.set_value();
    });
    closed.get_future().wait();
    EXPECT_EQ(ErrorOf(store_->Get(1)), Error::kShuttingDown);
    store_.reset();  // joins the thread, which ends on its own
}

}  // namespace
}  // namespace microcare::adapter
