// The PostgreSQL store's own behaviour, beyond the contract both stores share
// (sqlite_job_store_test.cpp): its versioned schema, migrated once however many stores start
// at once; several stores on one database as several replicas would use it (every job leased
// once per attempt, never two live jobs of one encounter, a dead store's lease taken over and
// its late Complete fenced, one job for a trigger sent to two stores at once); and a store
// whose connection the server killed recovering on the next call.
#include "adapter/store/pg_job_store.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/unit/adapter/store/pg_test_database.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"

namespace microcare::adapter {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;
using test_support::ErrorOf;
using test_support::MakeJob;
using test_support::PgTestSchema;
using test_support::ValueOf;

constexpr std::int64_t kStartMillis = 1'800'000'000'000;

class PgJobStoreTest : public ::testing::Test {
protected:
    PgJobStoreTest() {
        options_.synchronous_full = false;
        options_.now = [this] { return Now(); };
    }

    void SetUp() override {
        if (!pg_.available()) {
            GTEST_SKIP() << "PostgreSQL store not tested: " << pg_.skip_reason();
        }
    }

    std::unique_ptr<PgJobStore> Open() {
        auto store = PgJobStore::Open(pg_.url(), options_);
        if (!store) {
            ADD_FAILURE() << "open failed: " << store.error().message();
            return nullptr;
        }
        return std::move(*store);
    }

    // `count` stores on the test's database, as `count` replicas would have.
    std::vector<std::unique_ptr<PgJobStore>> OpenStores(int count) {
        std::vector<std::unique_ptr<PgJobStore>> stores;
        for (int i = 0; i < count; ++i) {
            stores.push_back(Open());
        }
        return stores;
    }

    TimePoint Now() const { return TimePoint(milliseconds(now_millis_.load())); }

    PgTestSchema pg_;
    std::atomic<std::int64_t> now_millis_{kStartMillis};
    StoreOptions options_;
};

// ---- Schema

TEST_F(PgJobStoreTest, CreatesSchemaAtCurrentVersion) {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(pg_.Query("SELECT max(version) FROM schema_version"), "2");
    EXPECT_EQ(pg_.Query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND "
                        "tablename IN ('jobs', 'messages', 'subscriptions', 'admin_notes', "
                        "'poll_cursors', 'schema_version', 'audit_records', 'audit_head')"),
              "8");
}

TEST_F(PgJobStoreTest, StoresStartingTogetherMigrateOnce) {
    constexpr int kStores = 6;
    std::vector<std::future<Result<std::unique_ptr<PgJobStore>>>> opening;
    for (int i = 0; i < kStores; ++i) {
        opening.push_back(std::async(std::launch::async,
                                     [this] { return PgJobStore::Open(pg_.url(), options_); }));
    }
    for (auto& open : opening) {
        EXPECT_TRUE(open.get().has_value());
    }
    EXPECT_EQ(pg_.Query("SELECT count(*) FROM schema_version"), "2");
}

TEST_F(PgJobStoreTest, RefusesDatabaseOfNewerSchema) {
    ASSERT_NE(Open(), nullptr);
    ASSERT_TRUE(pg_.Query("INSERT INTO schema_version (version) VALUES (99)"));
    EXPECT_EQ(ErrorOf(PgJobStore::Open(pg_.url(), options_)), Error::kStoreFailed);
}

TEST_F(PgJobStoreTest, ReadOnlyOpenNeitherCreatesNorWrites) {
    StoreOptions read_only = options_;
    read_only.read_only = true;
    EXPECT_EQ(ErrorOf(PgJobStore::Open(pg_.url(), read_only)), Error::kNotFound);
    EXPECT_EQ(pg_.Query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"), "0");
    auto writer = Open();
    const auto id = ValueOf(writer->Enqueue(MakeJob("trigger-1"))).job_id;
    auto reader = ValueOf(PgJobStore::Open(pg_.url(), read_only));
    EXPECT_EQ(ValueOf(reader->Get(id)).trigger_key, "trigger-1");
    EXPECT_EQ(ErrorOf(reader->Enqueue(MakeJob("trigger-2"))), Error::kStoreFailed);
}

TEST_F(PgJobStoreTest, UnreachableServerFailsToOpen) {
    EXPECT_EQ(
        ErrorOf(JobStore::Open("postgresql:///none?host=/nonexistent&connect_timeout=2", options_)),
        Error::kStoreFailed);
}

// ---- Several stores on one database

TEST_F(PgJobStoreTest, OneTriggerSentToTwoStoresAtOnceMakesOneJob) {
    auto stores = OpenStores(2);
    constexpr int kTriggers = 100;
    std::vector<std::future<Result<Enqueued>>> results;
    for (int i = 0; i < kTriggers; ++i) {
        for (auto& store : stores) {
            NewJob job = MakeJob("trigger-" + std::to_string(i));
            job.message = MessageRecord{"bundle-" + std::to_string(i), "header", "response"};
            auto promise = std::make_shared<std::promise<Result<Enqueued>>>();
            results.push_back(promise->get_future());
            store->EnqueueAsync(std::move(job), [promise](Result<Enqueued> result) {
                promise->set_value(std::move(result));
            });
        }
    }
    std::map<std::int64_t, int> created_by_job;
    for (auto& result : results) {
        const Enqueued enqueued = ValueOf(result.get());
        created_by_job[enqueued.job_id] += enqueued.created ? 1 : 0;
    }
    ASSERT_EQ(created_by_job.size(), static_cast<std::size_t>(kTriggers));
    for (const auto& [job, created] : created_by_job) {
        EXPECT_EQ(created, 1) << "job " << job;
    }
    EXPECT_EQ(ValueOf(stores[0]->CountByState(JobState::kQueued)),
              static_cast<std::size_t>(kTriggers));
}

// Workers on two or three stores (threads standing in for replicas) lease, hold and complete
// jobs of a few encounters as fast as they can: every job runs exactly once, and no two of one
// encounter ever run at once.
void LeaseFromManyStores(PgJobStoreTest& test, std::vector<std::unique_ptr<PgJobStore>>& stores,
                         TimePoint now) {
    constexpr int kEncounters = 12;
    constexpr int kJobsPerEncounter = 10;
    constexpr int kWorkersPerStore = 4;
    constexpr int kTotal = kEncounters * kJobsPerEncounter;
    for (int j = 0; j < kJobsPerEncounter; ++j) {
        for (int e = 0; e < kEncounters; ++e) {
            ASSERT_TRUE(stores[static_cast<std::size_t>(e) % stores.size()]->Enqueue(
                MakeJob("job-" + std::to_string(e) + "-" + std::to_string(j),
                        "Encounter/" + std::to_string(e))));
        }
    }
    std::mutex mutex;
    std::set<std::string> held;
    std::map<std::int64_t, int> runs;
    std::atomic<int> completed{0};
    std::atomic<bool> overlap{false};
    std::atomic<bool> failed{false};
    auto work = [&](PgJobStore& store) {
        while (completed.load() < kTotal && !failed.load()) {
            auto leased = store.Lease(now, hours(1), 2);
            if (!leased) {
                failed = true;
                return;
            }
            if (leased->empty()) {
                std::this_thread::yield();
                continue;
            }
            {
                std::lock_guard lock(mutex);
                for (const Job& job : *leased) {
                    overlap = overlap || !held.insert(job.encounter).second;
                    ++runs[job.id];
                }
            }
            for (const Job& job : *leased) {
                {
                    std::lock_guard lock(mutex);
                    held.erase(job.encounter);
                }
                if (!store.Complete(job.id, "ok", job.attempts)) {
                    failed = true;
                }
                ++completed;
            }
        }
    };
    std::vector<std::thread> workers;
    for (auto& store : stores) {
        for (int w = 0; w < kWorkersPerStore; ++w) {
            workers.emplace_back(work, std::ref(*store));
        }
    }
    for (auto& worker : workers) {
        worker.join();
    }
    EXPECT_FALSE(failed.load());
    EXPECT_FALSE(overlap.load());
    EXPECT_EQ(runs.size(), static_cast<std::size_t>(kTotal));
    for (const auto& [job, count] : runs) {
        EXPECT_EQ(count, 1) << "job " << job;
    }
    EXPECT_EQ(ValueOf(stores[0]->CountByState(JobState::kDone)), static_cast<std::size_t>(kTotal));
    static_cast<void>(test);
}

TEST_F(PgJobStoreTest, TwoStoresLeaseEveryJobOnceAndNeverTwoOfOneEncounter) {
    auto stores = OpenStores(2);
    LeaseFromManyStores(*this, stores, Now());
}

TEST_F(PgJobStoreTest, ThreeStoresLeaseEveryJobOnceAndNeverTwoOfOneEncounter) {
    auto stores = OpenStores(3);
    LeaseFromManyStores(*this, stores, Now());
}

TEST_F(PgJobStoreTest, AnExpiredLeaseIsTakenOverAndTheFirstWorkerIsFenced) {
    auto stores = OpenStores(2);
    const auto id = ValueOf(stores[0]->Enqueue(MakeJob("a", "Encounter/a"))).job_id;
    const auto first = ValueOf(stores[0]->Lease(Now(), seconds(10), 1));
    ASSERT_EQ(first.size(), 1u);
    // The other store sees the live lease...
    EXPECT_TRUE(ValueOf(stores[1]->Lease(Now() + seconds(5), seconds(10), 1)).empty());
    // ...and once it has expired (the first store's replica died), requeues and takes it.
    EXPECT_EQ(ValueOf(stores[1]->RequeueExpired(Now() + seconds(11))), 1u);
    const auto second = ValueOf(stores[1]->Lease(Now() + seconds(11), seconds(10), 1));
    ASSERT_EQ(second.size(), 1u);
    EXPECT_EQ(second[0].id, id);
    EXPECT_EQ(second[0].attempts, 2);
    // The first worker comes back late: fenced.
    EXPECT_EQ(ErrorOf(stores[0]->Complete(id, "late", first[0].attempts)), Error::kConflict);
    EXPECT_TRUE(stores[1]->Complete(id, "ok", second[0].attempts));
    EXPECT_EQ(ValueOf(stores[0]->Get(id)).outcome, "ok");
}

TEST_F(PgJobStoreTest, ALeaseHeldByAnotherStoresOpenTransactionIsSkippedNotWaitedFor) {
    auto stores = OpenStores(2);
    ValueOf(stores[0]->Enqueue(MakeJob("a", "Encounter/a")));
    ValueOf(stores[0]->Enqueue(MakeJob("b", "Encounter/b")));
    // Another session holds Encounter/a's lock in an open transaction (as a store mid-commit
    // would): the lease takes Encounter/b at once instead of waiting.
    PGconn* other = PQconnectdb(pg_.url().c_str());
    ASSERT_EQ(PQstatus(other), CONNECTION_OK);
    PQclear(PQexec(other,
                   "BEGIN; SELECT pg_advisory_xact_lock("
                   "hashtextextended(current_schema() || '/' || 'Encounter/a', 0))"));
    const auto leased = ValueOf(stores[1]->Lease(Now(), seconds(10), 10));
    ASSERT_EQ(leased.size(), 1u);
    EXPECT_EQ(leased[0].encounter, "Encounter/b");
    PQclear(PQexec(other, "ROLLBACK"));
    PQfinish(other);
    EXPECT_EQ(ValueOf(stores[0]->Lease(Now(), seconds(10), 10)).size(), 1u);
}

// Replicas move the admin notes (trigger records among them) into the one trail: each note is
// claimed by one store, which forgets only its own; a claim left by a dead replica expires.
TEST_F(PgJobStoreTest, EachAdminNoteIsClaimedByOneStoreForTheTrail) {
    auto stores = OpenStores(2);
    ASSERT_TRUE(stores[0] && stores[1]);
    for (int i = 0; i < 10; ++i) {
        AdminNote note;
        note.event = "backup";
        note.fields = {{"n", std::to_string(i)}};
        ASSERT_TRUE(stores[0]->AddAdminNote(note));
    }
    auto ids = [](const Result<std::vector<AdminNote>>& notes) {
        std::vector<std::int64_t> ids;
        for (const AdminNote& note : notes.value()) ids.push_back(note.id);
        return ids;
    };
    const auto a = ids(stores[0]->PendingAdminNotes(6));
    const auto b = ids(stores[1]->PendingAdminNotes(10));
    ASSERT_EQ(a.size(), 6u);
    ASSERT_EQ(b.size(), 4u);
    EXPECT_LT(a.back(), b.front());  // oldest first, none twice
    // b's forget up to its last note leaves a's older ones, which a takes again.
    ASSERT_TRUE(stores[1]->ForgetAdminNotes(b.back()));
    EXPECT_EQ(ids(stores[0]->PendingAdminNotes(10)), a);
    EXPECT_TRUE(stores[1]->PendingAdminNotes(10).value().empty());
    // a dies with its claim: once the claim runs out, b takes the notes.
    now_millis_ += 61000;
    EXPECT_EQ(ids(stores[1]->PendingAdminNotes(10)), a);
    ASSERT_TRUE(stores[1]->ForgetAdminNotes(a.back()));
    EXPECT_EQ(pg_.Query("SELECT count(*) FROM admin_notes"), "0");
}

// ---- Cost

// What one job costs in round trips to the server, enqueued by many callers at once (group
// commit shares BEGIN and COMMIT), leased ten at a time and completed: a bound that catches a
// statement added per job by mistake, and the figure printed for the record.
TEST_F(PgJobStoreTest, AJobCostsAFewRoundTripsFromEnqueueToDone) {
    auto store = Open();
    constexpr int kThreads = 16;
    constexpr int kPerThread = 25;
    constexpr int kJobs = kThreads * kPerThread;
    const std::uint64_t before = store->RoundTrips();
    const auto started = std::chrono::steady_clock::now();
    std::vector<std::thread> producers;
    for (int t = 0; t < kThreads; ++t) {
        producers.emplace_back([&, t] {
            for (int i = 0; i < kPerThread; ++i) {
                const std::string key = std::to_string(t) + "-" + std::to_string(i);
                EXPECT_TRUE(store->Enqueue(MakeJob("job-" + key, "Encounter/" + key)));
            }
        });
    }
    for (auto& producer : producers) producer.join();
    const std::uint64_t enqueued = store->RoundTrips();
    int done = 0;
    while (done < kJobs) {
        const auto leased = ValueOf(store->Lease(Now(), seconds(30), 10));
        ASSERT_FALSE(leased.empty());
        std::vector<std::future<Result<void>>> completions;
        for (const Job& job : leased) {
            auto promise = std::make_shared<std::promise<Result<void>>>();
            completions.push_back(promise->get_future());
            store->CompleteAsync(job.id, "ok", job.attempts,
                                 [promise](Result<void> result) { promise->set_value(result); });
        }
        for (auto& completion : completions) EXPECT_TRUE(completion.get());
        done += static_cast<int>(leased.size());
    }
    const double seconds_taken =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const std::uint64_t after = store->RoundTrips();
    const double enqueue_cost = static_cast<double>(enqueued - before - 1) / kJobs;
    const double total_cost = static_cast<double>(after - before - 2) / kJobs;
    std::printf(
        "PostgreSQL store: %.2f round trips per enqueue, %.2f per job enqueue to done; "
        "%d jobs in %.2f s; %llu commits\n",
        enqueue_cost, total_cost, kJobs, seconds_taken,
        static_cast<unsigned long long>(store->stats().commits));
    RecordProperty("round_trips_per_job", std::to_string(total_cost));
    EXPECT_LE(total_cost, 10.0);
}

// ---- Wake-ups

// Waits for `count` calls of a store's work-available callback, or gives up after a while.
class WorkSignals {
public:
    std::function<void()> Callback() {
        return [this] {
            std::lock_guard lock(mutex_);
            ++calls_;
            changed_.notify_all();
        };
    }
    bool WaitFor(int count) {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, seconds(20), [&] { return calls_ >= count; });
    }
    int calls() {
        std::lock_guard lock(mutex_);
        return calls_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    int calls_ = 0;
};

TEST_F(PgJobStoreTest, AnotherStoresNewJobWakesTheWorkerWithoutPolling) {
    auto stores = OpenStores(2);
    WorkSignals signals;
    stores[1]->OnWorkAvailable(signals.Callback());
    ASSERT_TRUE(signals.WaitFor(1));  // the first, on listening: whatever came before is looked at
    const int before = signals.calls();
    ASSERT_TRUE(stores[0]->Enqueue(MakeJob("a", "Encounter/a")));
    EXPECT_TRUE(signals.WaitFor(before + 1)) << "no wake-up for a job another store enqueued";
    // Finishing a job frees its encounter: a wake-up too.
    const auto leased = ValueOf(stores[0]->Lease(Now(), seconds(30), 1));
    ASSERT_EQ(leased.size(), 1u);
    const int after_enqueue = signals.calls();
    ASSERT_TRUE(stores[0]->Complete(leased[0].id, "ok", leased[0].attempts));
    EXPECT_TRUE(signals.WaitFor(after_enqueue + 1)) << "no wake-up for a freed encounter";
    // A known trigger makes no job, and no wake-up is promised for it; after the callback is
    // cleared none comes at all.
    stores[1]->OnWorkAvailable(nullptr);
    const int cleared = signals.calls();
    ASSERT_TRUE(stores[0]->Enqueue(MakeJob("b", "Encounter/b")));
    ASSERT_TRUE(stores[0]->Get(1));  // a round trip after the commit
    EXPECT_EQ(signals.calls(), cleared);
}

TEST_F(PgJobStoreTest, TheListenerReconnectsAfterItsConnectionIsKilled) {
    auto stores = OpenStores(2);
    WorkSignals signals;
    stores[1]->OnWorkAvailable(signals.Callback());
    ASSERT_TRUE(signals.WaitFor(1));
    // The listener's connection is the one LISTENing on the channel.
    ASSERT_EQ(pg_.Query("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                        "query LIKE 'LISTEN%' AND pid <> pg_backend_pid() AND "
                        "application_name = current_setting('application_name')"),
              "1");
    // On its new connection it calls once more (it may have missed something meanwhile)...
    ASSERT_TRUE(signals.WaitFor(2));
    const int reconnected = signals.calls();
    // ...and hears new jobs again.
    ASSERT_TRUE(stores[0]->Enqueue(MakeJob("a", "Encounter/a")));
    EXPECT_TRUE(signals.WaitFor(reconnected + 1));
}

// ---- A lost connection

// pg_terminate_backend with a timeout returns once the server process has ended: what a
// server restart or failover does to a session.
std::string Terminate(const PgTestSchema& pg, int pid) {
    return pg.Query("SELECT pg_terminate_backend(" + std::to_string(pid) + ", 10000)").value_or("");
}

TEST_F(PgJobStoreTest, AConnectionTheServerEndedIsReplacedBeforeTheNextCall) {
    auto store = Open();
    const auto id = ValueOf(store->Enqueue(MakeJob("a"))).job_id;
    const int pid = store->BackendPid();
    ASSERT_GT(pid, 0);
    ASSERT_EQ(Terminate(pg_, pid), "t");
    // The server said goodbye: the store notices before its next statement and reconnects.
    EXPECT_EQ(ValueOf(store->Get(id)).trigger_key, "a");
    EXPECT_NE(store->BackendPid(), pid);
    EXPECT_TRUE(ValueOf(store->Enqueue(MakeJob("b"))).created);
    EXPECT_EQ(ValueOf(store->CountByState(JobState::kQueued)), 2u);
}

TEST_F(PgJobStoreTest, ABatchWhoseConnectionDiesMidwayIsNotAcknowledgedAndTheNextReconnects) {
    auto store = Open();
    // The connection dies in the middle of a batch, after some of its writes: inserting the job
    // "poison" ends the session that inserts it.
    ASSERT_TRUE(pg_.Query(
        "CREATE FUNCTION kill_session() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "IF NEW.trigger_key = 'poison' THEN PERFORM pg_terminate_backend(pg_backend_pid()); "
        "END IF; RETURN NEW; END $$; CREATE TRIGGER kill_session AFTER INSERT ON jobs "
        "FOR EACH ROW EXECUTE FUNCTION kill_session()"));
    std::vector<std::future<Result<Enqueued>>> batch;
    {
        // Hold the store's thread so that the three writes share one batch.
        std::promise<void> entered;
        std::promise<void> release;
        store->EnqueueAsync(MakeJob("gate", "Encounter/gate"),
                            [&, released = release.get_future().share()](Result<Enqueued>) {
                                entered.set_value();
                                released.wait();
                            });
        entered.get_future().wait();
        for (const char* key : {"before", "poison", "after"}) {
            auto promise = std::make_shared<std::promise<Result<Enqueued>>>();
            batch.push_back(promise->get_future());
            store->EnqueueAsync(
                MakeJob(key, std::string("Encounter/") + key),
                [promise](Result<Enqueued> result) { promise->set_value(std::move(result)); });
        }
        release.set_value();
    }
    // Not committed, so not acknowledged, not even the write before the fault: the callers (the
    // EHR) send them again.
    for (auto& result : batch) {
        EXPECT_EQ(ErrorOf(result.get()), Error::kStoreFailed);
    }
    EXPECT_EQ(ValueOf(store->CountByState(JobState::kQueued)), 1u);  // the gate
    EXPECT_TRUE(ValueOf(store->Enqueue(MakeJob("before", "Encounter/before"))).created);
}

}  // namespace
}  // namespace microcare::adapter
