#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "adapter/store/group_commit_queue.hpp"
#include "adapter/store/job_store.hpp"
#include "adapter/store/pg_connection.hpp"

namespace microcare::adapter {

// JobStore on a PostgreSQL database that any number of stores (threads, processes, replicas)
// share.
//
// As the SQLite store: one thread of its own owns the connection (libpq blocks; no I/O thread
// ever waits on it, callers get their callback and resume on their own executor) and runs every
// call as a task, group-committed (detail::GroupCommitQueue): one BEGIN ... COMMIT per batch,
// a SAVEPOINT per write, callbacks only after COMMIT.
//
// Across stores:
// - Lease never starts two jobs of one encounter. The encounter, not the job row, is what must
//   be exclusive, so the claim is a try-lock on the encounter (a transaction-scoped advisory
//   lock on a hash of it, `pg_try_advisory_xact_lock`: the SKIP LOCKED of encounters) taken
//   before the statement that re-checks for a live running job and claims the row. Under READ
//   COMMITTED that statement's snapshot is taken after the lock is held, so it sees every lease
//   of that encounter that committed before; one that has not committed still holds the lock,
//   and the encounter is skipped. A hash collision only makes two encounters wait for each
//   other. A partial unique index on running jobs would not do: an expired lease's job stays
//   'running' until RequeueExpired, yet must no longer block its encounter (the contract).
//   The claimed rows are also taken FOR UPDATE SKIP LOCKED, so that a lease never waits for a
//   row another transaction holds.
// - Enqueue of one trigger by two stores at once makes one job: INSERT ... ON CONFLICT DO
//   NOTHING waits for the other's commit and then finds its job.
// - Finishing a job is fenced by the attempt as in SQLite: the row's state and attempts decide.
// - A lost connection fails the calls of the batch in flight with Error::kStoreFailed; the next
//   batch reconnects.
class PgJobStore final : public JobStore {
public:
    using Stats = detail::GroupCommitQueue::Stats;

    // Connects, brings the schema up to date (once, however many stores start at once) and
    // starts the store's thread. A database of a newer schema is refused. Read-only: nothing is
    // created or migrated, and a database without MicroCare's schema is Error::kNotFound.
    static Result<std::unique_ptr<PgJobStore>> Open(const std::string& url,
                                                    const StoreOptions& options = {});
    // JobStore::Migrate for a PostgreSQL URL.
    static Result<SchemaMigration> Migrate(const std::string& url);
    // The newest schema_version this release knows; a store of a later one is refused.
    static std::int64_t NewestSchemaVersion();
    ~PgJobStore() override;

    void EnqueueAsync(NewJob job, Callback<Enqueued> done) override;
    Result<std::vector<Enqueued>> CommitPollPage(PollPage page) override;
    Result<std::optional<PollCursor>> ReadPollCursor(const std::string& poll) override;
    void LastEventNumberAsync(std::string subscription, Callback<std::int64_t> done) override;
    void LeaseAsync(TimePoint now, std::chrono::milliseconds lease, std::size_t max,
                    Callback<std::vector<Job>> done) override;
    void RequeueExpiredAsync(TimePoint now, Callback<std::size_t> done) override;
    void CompleteAsync(std::int64_t id, std::string outcome, std::optional<int> attempt,
                       Callback<void> done) override;
    void ExtendLeaseAsync(std::int64_t id, int attempt, TimePoint until,
                          Callback<void> done) override;
    void RetryLaterAsync(std::int64_t id, TimePoint next_attempt, std::string error,
                         std::optional<int> attempt, Callback<void> done) override;
    void DeadLetterAsync(std::int64_t id, std::string reason, std::string outcome,
                         std::optional<int> attempt, Callback<void> done) override;
    Result<void> Retry(std::int64_t id, TimePoint now) override;
    Result<std::vector<std::int64_t>> RetryJobs(const std::vector<std::int64_t>& ids, TimePoint now,
                                                AdminNote note) override;
    Result<std::size_t> PurgeDone(TimePoint done_before, AdminNote note) override;
    Result<void> AddAdminNote(AdminNote note) override;
    Result<std::vector<AdminNote>> PendingAdminNotes(std::size_t max) override;
    Result<void> ForgetAdminNotes(std::int64_t up_to_id) override;
    Result<Job> Get(std::int64_t id) override;
    Result<std::vector<Job>> List(const JobFilter& filter) override;
    Result<std::size_t> CountByState(JobState state) override;
    Result<std::optional<TimePoint>> OldestWaiting() override;
    void OnWorkAvailable(std::function<void()> on_work) override;
    void Close() override;

    Stats stats() const;
    // The server process behind the store's connection (tests terminate it to show recovery).
    int BackendPid();
    // Statements the store's connection has sent (each a round trip), for measurements.
    std::uint64_t RoundTrips();

private:
    class Hooks;

    PgJobStore(std::string url, detail::PgConnection connection, const StoreOptions& options);

    // The listener's thread: a connection of its own LISTENing on the jobs channel, calling
    // on_work_ for each batch of notifications; reconnects (and calls on_work_, since it may
    // have missed some) after a lost connection.
    void Listen();
    void CallOnWork();
    void StopListener();

    // Task bodies: they run on the store's thread only.
    Result<Enqueued> DoEnqueue(const NewJob& job);
    Result<std::optional<Enqueued>> EnqueueMessageAtOnce(const NewJob& job);
    Result<std::vector<Enqueued>> DoCommitPollPage(PollPage& page);
    Result<std::vector<Job>> DoLease(TimePoint now, std::chrono::milliseconds lease,
                                     std::size_t max);
    // An UPDATE of one running job guarded by its state and attempt.
    Result<void> FinishRunning(std::int64_t id, const std::string& set, detail::PgParams params,
                               std::optional<int> attempt);
    Result<void> DoRetry(std::int64_t id, TimePoint now);
    Result<void> DoInsertNote(const AdminNote& note);
    Result<std::vector<Job>> QueryJobs(
        std::string_view sql, const detail::PgParams& params,
        detail::PgConnection::Plan plan = detail::PgConnection::Plan::kCached);
    // After an UPDATE guarded by the job's state changed nothing: tells a missing job
    // (kNotFound) from one in the wrong state (kConflict).
    Result<void> MissingOrConflict(std::int64_t id);

    const StoreOptions options_;
    const std::string url_;
    // Who claims admin notes (PendingAdminNotes): this store, among every store on the database.
    const std::int64_t claimant_;
    // How long a claim on notes holds without its ForgetAdminNotes.
    static constexpr std::int64_t kNoteClaimMillis = 60000;
    detail::PgConnection db_;  // used by the store's thread only

    std::mutex on_work_mutex_;
    std::function<void()> on_work_;  // guarded by on_work_mutex_
    std::mutex listener_mutex_;      // starting and stopping the listener
    std::thread listener_;
    int stop_listener_fd_ = -1;  // an eventfd: written to stop the listener
    std::unique_ptr<Hooks> hooks_;
    detail::GroupCommitQueue queue_;  // declared last: its thread starts once the rest exists
};

}  // namespace microcare::adapter
