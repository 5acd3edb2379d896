#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/clock.hpp"
#include "adapter/error.hpp"
#include "adapter/store/store_location.hpp"

namespace microcare::adapter {

enum class JobState { kQueued, kRunning, kDone, kDead };
std::string_view ToString(JobState state);

// A unit of work: assess one encounter and write the result back to the EHR.
struct Job {
    std::int64_t id = 0;
    std::string trigger_key;  // unique per trigger: a re-sent trigger finds the same job
    std::string encounter;    // "Encounter/123": jobs of one encounter never run at once
    std::string kind;         // "process-message", "subscription", "poll", ...
    std::string payload;      // JSON the worker needs (never logged: it may hold patient data)
    JobState state = JobState::kQueued;
    int attempts = 0;
    TimePoint created_at{};
    TimePoint updated_at{};
    TimePoint next_attempt_at{};
    std::optional<TimePoint> lease_until;
    std::string last_error;  // safe text, no patient data
    std::string outcome;     // result summary, or the EHR's OperationOutcome on a 4xx
};

// A FHIR message (`$process-message`) recorded with its job: a re-sent message gets the stored
// response and makes no second job.
struct MessageRecord {
    std::string bundle_id;
    std::string header_id;
    std::string response;  // the response message Bundle, JSON
};

// A Subscription notification's event number, stored with its job so that gaps and repeats
// can be told apart.
struct SubscriptionEvent {
    std::string subscription;  // Subscription reference
    std::int64_t event_number = 0;
};

// A record for the audit trail committed in the store with the change it describes: what an
// admin did (the command line runs beside the service that holds the trail, which is locked to
// one process), or the trigger of a new job (NewJob::note). Written into the trail later by
// whoever holds it (admin_audit.hpp).
struct AdminNote {
    std::int64_t id = 0;  // set by the store
    std::string event;    // "trigger", "jobs-retry", "jobs-purge", "backup", "restore"
    std::vector<std::pair<std::string, std::string>> fields;
};

struct NewJob {
    std::string trigger_key;
    std::string encounter;
    std::string kind;
    std::string payload;
    std::optional<MessageRecord> message;
    std::optional<SubscriptionEvent> subscription_event;
    // The trigger's audit record, committed with the job when the job is new (the store adds
    // `job`, the id it got) and nothing of it when the trigger was known: a job exists only
    // with the record that names it, and the trigger is acknowledged after one commit, not
    // after the store's and then the trail's. The record reaches the trail from the store
    // (PendingAdminNotes), right after the commit.
    std::optional<AdminNote> note;
};

struct Enqueued {
    std::int64_t job_id = 0;
    bool created = false;         // false: the trigger was known (same trigger_key or same message)
    std::string stored_response;  // for a re-sent message: the response recorded the first time
};

struct StoreOptions {
    // Group commit: writes arriving while a commit is in progress go into the next one, so
    // that many acknowledgements share one fsync. A commit waits at most this long for more.
    std::chrono::microseconds max_batch_delay{200};
    std::size_t max_batch_size = 256;
    bool synchronous_full = true;  // fsync on every commit (durability); tests may turn it off
    // How long a write waits for another process holding the database's write lock (the
    // command line, a backup) before it fails with Error::kStoreFailed.
    std::chrono::milliseconds busy_timeout{5000};
    // The time written into created_at / updated_at where the call carries none (Enqueue,
    // Complete, RetryLater, DeadLetter); injected so that tests control it.
    WallClock now = SystemNow;
    // For the command line's reads: the database is opened read-only and must exist (Open
    // fails with Error::kNotFound otherwise), so that looking never creates or migrates a
    // store. Writes then fail with Error::kStoreFailed.
    bool read_only = false;
};

// What `microcare store migrate` did: the schema version found and the one left.
struct SchemaMigration {
    std::int64_t from = 0;
    std::int64_t to = 0;
};

struct JobFilter {
    std::optional<JobState> state;
    std::size_t limit = 100;
    // Jobs whose last change (updated_at: enqueued, leased, finished, retried) is at or after
    // this time: for a dead job, when it died.
    std::optional<TimePoint> changed_since;
    std::string encounter;      // "Encounter/id"; empty: any
    bool newest_first = false;  // by id; the default is the order jobs arrived in
};

// Where a poll of the EHR's search API stands (adapter/poll/): the highest `_lastUpdated` it
// has journaled, and the floor it never searches below (the configured `since` of its first
// start: what was updated before it is not MicroCare's to assess).
struct PollCursor {
    TimePoint high_water{};
    TimePoint floor{};
};

// One page of a poll: its triggers and where the cursor stands once they are journaled.
struct PollPage {
    std::string poll;              // "encounters"
    std::vector<NewJob> triggers;  // each with its note
    PollCursor cursor;
};

// The durable inbox and job queue: one SQLite database in WAL mode, written by one thread of
// its own (no SQLite call ever runs on an I/O thread). Every write is acknowledged only once
// it is committed to disk.
//
// The calls on the path of every trigger and job have an asynchronous form, the one a store
// implements: it takes a callback that runs on the store's thread once the call is done (for a
// write: committed); callers resume on their own executor (AwaitCallback), so that any number
// of them share one commit and no thread waits. Each has a blocking form, for the command line
// and tests, that waits for that callback. The other calls (admin actions, reads for the CLI and
// /metrics) only block the calling thread (never an I/O thread). A callback must not throw,
// block, or call a blocking method (that would wait for the thread it is running on); after
// Close it runs at once on the calling thread with Error::kShuttingDown.
//
// Complete, RetryLater and DeadLetter move a running job on; for a job in another state they
// fail with Error::kConflict (e.g. a worker whose lease expired and whose job was requeued).
class JobStore {
public:
    template <typename T>
    using Callback = std::function<void(Result<T>)>;

    // `location`: a postgresql:// (or postgres://) URL opens the PostgreSQL store that several
    // replicas share; anything else is the path of the embedded SQLite database.
    static Result<std::unique_ptr<JobStore>> Open(const std::string& location,
                                                  const StoreOptions& options = {});
    // Brings the schema at `location` up to date and reports from which version to which,
    // creating the store if there is none. Safe while other processes (replicas) do the same:
    // one migrates, the others find it done. Open does it too.
    static Result<SchemaMigration> Migrate(const std::string& location);
    virtual ~JobStore() = default;

    // Records the trigger and its job atomically and durably. A known trigger_key, or a known
    // message (same bundle_id and header_id), returns the existing job with created == false
    // (and the stored response); the same bundle_id with another header_id is Error::kConflict.
    // A subscription event updates that subscription's last event number in the same commit.
    virtual void EnqueueAsync(NewJob job, Callback<Enqueued> done) = 0;
    Result<Enqueued> Enqueue(NewJob job);

    // Journals the triggers of one page of a poll and moves the poll's cursor to the page's, in
    // one commit: a crash before it re-reads the page, never skips it. Each trigger is
    // enqueued as Enqueue does (a known trigger_key finds its job); the audit notes of the new
    // jobs are committed with them (PendingAdminNotes). Returns one Enqueued per trigger.
    virtual Result<std::vector<Enqueued>> CommitPollPage(PollPage page) = 0;
    // Where the poll stands; nothing before its first page.
    virtual Result<std::optional<PollCursor>> ReadPollCursor(const std::string& poll) = 0;

    // The highest event number recorded for a subscription (0 if none).
    virtual void LastEventNumberAsync(std::string subscription, Callback<std::int64_t> done) = 0;
    Result<std::int64_t> LastEventNumber(const std::string& subscription);

    // Takes up to `max` queued jobs due at `now` whose encounter has no running job, marks
    // them running until now + lease and counts an attempt. Longest due first; at most one job
    // per encounter in one call; a running job whose lease has expired no longer blocks its
    // encounter.
    virtual void LeaseAsync(TimePoint now, std::chrono::milliseconds lease, std::size_t max,
                            Callback<std::vector<Job>> done) = 0;
    Result<std::vector<Job>> Lease(TimePoint now, std::chrono::milliseconds lease, std::size_t max);
    // Running jobs whose lease has expired (their worker died) go back to the queue.
    virtual void RequeueExpiredAsync(TimePoint now, Callback<std::size_t> done) = 0;
    Result<std::size_t> RequeueExpired(TimePoint now);
    // Finishing a job. With `attempt` (Job::attempts as leased) the call is fenced: a worker
    // whose lease ran out and whose job was leased again gets Error::kConflict instead of
    // overwriting the newer attempt's state.
    virtual void CompleteAsync(std::int64_t id, std::string outcome, std::optional<int> attempt,
                               Callback<void> done) = 0;
    Result<void> Complete(std::int64_t id, const std::string& outcome,
                          std::optional<int> attempt = std::nullopt);
    // Keeps a running job's lease until `until`, if attempt `attempt` still owns it
    // (Error::kConflict otherwise: its lease ran out and another attempt took the job). The
    // worker renews it between a job's steps, so that a job slower than one lease (a slow EHR)
    // is not taken over while it runs, and a short lease can make failover fast.
    virtual void ExtendLeaseAsync(std::int64_t id, int attempt, TimePoint until,
                                  Callback<void> done) = 0;
    Result<void> ExtendLease(std::int64_t id, int attempt, TimePoint until);
    virtual void RetryLaterAsync(std::int64_t id, TimePoint next_attempt, std::string error,
                                 std::optional<int> attempt, Callback<void> done) = 0;
    Result<void> RetryLater(std::int64_t id, TimePoint next_attempt, const std::string& error,
                            std::optional<int> attempt = std::nullopt);
    virtual void DeadLetterAsync(std::int64_t id, std::string reason, std::string outcome,
                                 std::optional<int> attempt, Callback<void> done) = 0;
    Result<void> DeadLetter(std::int64_t id, const std::string& reason, const std::string& outcome,
                            std::optional<int> attempt = std::nullopt);
    // Puts a job (done or dead) back in the queue with its attempts reset.
    virtual Result<void> Retry(std::int64_t id, TimePoint now) = 0;
    // The same for each of `ids` that is done or dead, in one commit with `note` (to which the
    // store adds `jobs`, the ids retried, and `count`). Returns the ids retried; the others
    // (unknown, queued, running) are left as they are.
    virtual Result<std::vector<std::int64_t>> RetryJobs(const std::vector<std::int64_t>& ids,
                                                        TimePoint now, AdminNote note) = 0;
    // Deletes done jobs last changed before `done_before` (never queued, running or dead ones)
    // with their recorded messages, in one commit with `note` (plus `count`). A trigger re-sent
    // after its job was purged makes a new job; its writes are conditional creates, so the EHR
    // gets nothing twice.
    virtual Result<std::size_t> PurgeDone(TimePoint done_before, AdminNote note) = 0;
    // An admin action that changed no job (a backup, a restore), committed on its own.
    virtual Result<void> AddAdminNote(AdminNote note) = 0;
    // Admin notes not yet in the audit trail, oldest first, and forgetting them once written.
    virtual Result<std::vector<AdminNote>> PendingAdminNotes(std::size_t max) = 0;
    virtual Result<void> ForgetAdminNotes(std::int64_t up_to_id) = 0;

    virtual Result<Job> Get(std::int64_t id) = 0;
    virtual Result<std::vector<Job>> List(const JobFilter& filter) = 0;
    virtual Result<std::size_t> CountByState(JobState state) = 0;
    // When the oldest job not yet done or dead (queued or running) was created; nothing when
    // no job waits. What /metrics shows as its age: a trigger that waits too long, whatever
    // the reason, is seen there.
    virtual Result<std::optional<TimePoint>> OldestWaiting() = 0;

    // Calls `on_work` (on a thread of the store's; it must not block) when work may have become
    // available through another process sharing the store: a job enqueued or finished by
    // another replica. The worker then leases at once instead of at its next poll, which stays
    // the fallback. Replaces the previous callback; an empty one stops the calls, and once this
    // returns the previous callback is not running and will not run. A store no other process
    // writes (SQLite) never calls it.
    virtual void OnWorkAvailable(std::function<void()> on_work) { static_cast<void>(on_work); }

    // Waits for pending writes, then stops the store's thread. Later calls fail with
    // Error::kShuttingDown.
    virtual void Close() = 0;
};

}  // namespace microcare::adapter
