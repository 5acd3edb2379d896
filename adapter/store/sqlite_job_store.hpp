#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "adapter/store/group_commit_queue.hpp"
#include "adapter/store/job_store.hpp"

struct sqlite3;

namespace microcare::adapter {

// JobStore on one SQLite database in WAL mode.
//
// One thread owns the connection and runs every call, reads included, as a task from its queue
// in arrival order, group-committed (detail::GroupCommitQueue) in BEGIN IMMEDIATE ... COMMIT
// with a SAVEPOINT per write. With synchronous=FULL that is one fsync for the whole batch, and
// nothing is acknowledged that is not on disk.
class SqliteJobStore final : public JobStore {
public:
    // What group commit achieved so far (for metrics and tests).
    using Stats = detail::GroupCommitQueue::Stats;

    // Opens (or creates) the database, brings its schema up to date and starts the store's
    // thread. A database written by a newer schema version is refused. Read-only
    // (StoreOptions::read_only): an existing database as it is, created and migrated by nobody.
    static Result<std::unique_ptr<SqliteJobStore>> Open(const std::string& path,
                                                        const StoreOptions& options = {});
    // JobStore::Migrate for a SQLite file.
    static Result<SchemaMigration> Migrate(const std::string& path);
    ~SqliteJobStore() override;

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
    // Also safe from a callback (it then stops the thread without waiting for it); the store
    // must still not be destroyed from one of its own callbacks.
    void Close() override;

    Stats stats() const;

private:
    class Hooks;
    struct Statements;
    struct ConnectionCloser {
        void operator()(sqlite3* db) const;
    };
    using Connection = std::unique_ptr<sqlite3, ConnectionCloser>;

    SqliteJobStore(Connection db, std::unique_ptr<Statements> statements,
                   const StoreOptions& options);

    template <typename T>
    void Submit(bool writes, std::function<Result<T>()> body, std::function<void(Result<T>)> done);
    template <typename T>
    Result<T> SubmitAndWait(bool writes, std::function<Result<T>()> body);

    // Task bodies: they run on the store's thread only.
    Result<Enqueued> DoEnqueue(const NewJob& job);
    Result<std::vector<Enqueued>> DoCommitPollPage(PollPage& page);
    Result<std::optional<PollCursor>> DoReadPollCursor(const std::string& poll);
    Result<std::int64_t> DoLastEventNumber(const std::string& subscription);
    Result<std::vector<Job>> DoLease(TimePoint now, std::chrono::milliseconds lease,
                                     std::size_t max);
    Result<std::size_t> DoRequeueExpired(TimePoint now);
    Result<void> DoComplete(std::int64_t id, const std::string& outcome,
                            std::optional<int> attempt);
    Result<void> DoRetryLater(std::int64_t id, TimePoint next_attempt, const std::string& error,
                              std::optional<int> attempt);
    Result<void> DoDeadLetter(std::int64_t id, const std::string& reason,
                              const std::string& outcome, std::optional<int> attempt);
    Result<void> DoRetry(std::int64_t id, TimePoint now);
    Result<std::vector<std::int64_t>> DoRetryJobs(const std::vector<std::int64_t>& ids,
                                                  TimePoint now, AdminNote& note);
    Result<std::size_t> DoPurgeDone(TimePoint done_before, AdminNote& note);
    Result<void> DoInsertNote(const AdminNote& note);
    Result<std::vector<AdminNote>> DoPendingAdminNotes(std::size_t max);
    Result<void> DoForgetAdminNotes(std::int64_t up_to_id);
    Result<Job> DoGet(std::int64_t id);
    Result<std::vector<Job>> DoList(const JobFilter& filter);
    Result<std::size_t> DoCountByState(JobState state);
    Result<std::optional<TimePoint>> DoOldestWaiting();
    // After an UPDATE guarded by the job's state changed nothing: tells a missing job
    // (kNotFound) from one in the wrong state (kConflict).
    Result<void> MissingOrConflict(std::int64_t id);

    const StoreOptions options_;
    Connection db_;                           // used by the store's thread only
    std::unique_ptr<Statements> statements_;  // used by the store's thread only
    std::unique_ptr<Hooks> hooks_;
    detail::GroupCommitQueue queue_;  // declared last: its thread starts once the rest exists
};

}  // namespace microcare::adapter
