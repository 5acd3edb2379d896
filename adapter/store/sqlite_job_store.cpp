#include "adapter/store/sqlite_job_store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <exception>
#include <future>
#include <limits>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>

#include "adapter/store/job_rows.hpp"
#include "adapter/store/sqlite_statement.hpp"

namespace microcare::adapter {
namespace {

using detail::FromMillis;
using detail::kJobColumns;
using detail::Millis;
using detail::ResetOnExit;
using detail::SqliteStatement;
using detail::StateFromText;

// Schema migrations, in order: migration i takes user_version i to i + 1. A released migration
// is never edited; a change is a new entry.
//
// States are stored as their names so that an admin with the sqlite3 shell can read them, and
// the partial index names 'running' literally so that the planner can match it.
constexpr std::array<std::string_view, 3> kMigrations = {
    R"sql(
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY,
    trigger_key TEXT NOT NULL UNIQUE,
    encounter TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_due ON jobs (state, next_attempt_at);
CREATE INDEX jobs_running_encounter ON jobs (encounter, lease_until) WHERE state = 'running';
CREATE TABLE messages (
    bundle_id TEXT PRIMARY KEY,
    header_id TEXT NOT NULL,
    response TEXT NOT NULL,
    job_id INTEGER NOT NULL REFERENCES jobs (id)
);
CREATE TABLE subscriptions (
    subscription TEXT PRIMARY KEY,
    last_event_number INTEGER NOT NULL
);
)sql",
    // What admins did (retries, purges), until the holder of the audit trail has written it
    // there: `fields` is a JSON object of strings.
    R"sql(
CREATE TABLE admin_notes (
    id INTEGER PRIMARY KEY,
    event TEXT NOT NULL,
    fields TEXT NOT NULL
);
)sql",
    // Where each poll of the EHR's search API stands (milliseconds since the epoch, UTC).
    R"sql(
CREATE TABLE poll_cursors (
    poll TEXT PRIMARY KEY,
    high_water INTEGER NOT NULL,
    floor INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
)sql",
};

constexpr const char* kListFilter =
    "(?1 IS NULL OR state = ?1) AND (?2 IS NULL OR updated_at >= ?2) "
    "AND (?3 IS NULL OR encounter = ?3)";

// Reads a row of kJobColumns.
Result<Job> ReadJob(const SqliteStatement& row) {
    Job job;
    job.id = row.Int64(0);
    job.trigger_key = row.Text(1);
    job.encounter = row.Text(2);
    job.kind = row.Text(3);
    job.payload = row.Text(4);
    auto state = StateFromText(row.Text(5));
    if (!state) {
        return Error::kStoreFailed;
    }
    job.state = *state;
    job.attempts = static_cast<int>(row.Int64(6));
    job.created_at = FromMillis(row.Int64(7));
    job.updated_at = FromMillis(row.Int64(8));
    job.next_attempt_at = FromMillis(row.Int64(9));
    if (auto lease_until = row.OptionalInt64(10)) {
        job.lease_until = FromMillis(*lease_until);
    }
    job.last_error = row.Text(11);
    job.outcome = row.Text(12);
    return job;
}

Result<void> Exec(sqlite3* db, const std::string& sql) {
    if (sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        return Error::kStoreFailed;
    }
    return {};
}

// The first column of the first row of a one-off query (pragmas).
template <typename T>
Result<T> QueryValue(sqlite3* db, std::string_view sql) {
    auto statement = SqliteStatement::Prepare(db, sql);
    if (!statement) {
        return statement.error();
    }
    auto row = statement->Next();
    if (!row) {
        return row.error();
    }
    if (!*row) {
        return Error::kStoreFailed;
    }
    if constexpr (std::is_same_v<T, std::string>) {
        return statement->Text(0);
    } else {
        return statement->Int64(0);
    }
}

// The schema version is SQLite's own user_version, written in the migration's transaction:
// what every database written so far carries, so they all migrate forward as they are.
Result<SchemaMigration> Migrate(sqlite3* db) {
    // IMMEDIATE: two processes opening a new database at once must not both create it.
    if (auto begun = Exec(db, "BEGIN IMMEDIATE"); !begun) {
        return begun.error();
    }
    SchemaMigration change;
    auto migrate = [db, &change]() -> Result<void> {
        auto version = QueryValue<std::int64_t>(db, "PRAGMA user_version");
        if (!version) {
            return version.error();
        }
        if (*version < 0 || static_cast<std::size_t>(*version) > kMigrations.size()) {
            // Written by a newer release (or not by us): this one would misread it.
            return Error::kStoreFailed;
        }
        change = {*version, static_cast<std::int64_t>(kMigrations.size())};
        for (auto step = static_cast<std::size_t>(*version); step < kMigrations.size(); ++step) {
            if (auto done = Exec(db, std::string(kMigrations[step])); !done) {
                return done;
            }
        }
        return Exec(db, "PRAGMA user_version = " + std::to_string(kMigrations.size()));
    };
    if (auto migrated = migrate(); !migrated) {
        // The migration's own error is the one worth reporting; a failed rollback changes
        // nothing, as closing the connection rolls back anyway.
        static_cast<void>(Exec(db, "ROLLBACK"));
        return migrated.error();
    }
    if (auto committed = Exec(db, "COMMIT"); !committed) {
        return committed.error();
    }
    return change;
}

}  // namespace

struct SqliteJobStore::Statements {
    SqliteStatement begin;
    SqliteStatement commit;
    SqliteStatement rollback;
    SqliteStatement savepoint;
    SqliteStatement rollback_to_savepoint;
    SqliteStatement release_savepoint;

    SqliteStatement find_message;
    SqliteStatement find_trigger;
    SqliteStatement insert_job;
    SqliteStatement insert_message;
    SqliteStatement upsert_subscription;
    SqliteStatement last_event_number;
    SqliteStatement insert_note;

    SqliteStatement lease_candidates;
    SqliteStatement lease_job;
    SqliteStatement requeue_expired;
    SqliteStatement complete;
    SqliteStatement extend_lease;
    SqliteStatement retry_later;
    SqliteStatement dead_letter;
    SqliteStatement retry;
    SqliteStatement job_exists;

    SqliteStatement get_job;
    SqliteStatement list_jobs;
    SqliteStatement list_jobs_newest_first;
    SqliteStatement count_in_state;
    SqliteStatement oldest_waiting;

    static Result<std::unique_ptr<Statements>> Prepare(sqlite3* db);
};

Result<std::unique_ptr<SqliteJobStore::Statements>> SqliteJobStore::Statements::Prepare(
    sqlite3* db) {
    auto statements = std::make_unique<Statements>();
    const std::string columns(kJobColumns);
    const std::pair<SqliteStatement Statements::*, std::string> sql[] = {
        {&Statements::begin, "BEGIN IMMEDIATE"},
        {&Statements::commit, "COMMIT"},
        {&Statements::rollback, "ROLLBACK"},
        {&Statements::savepoint, "SAVEPOINT task"},
        {&Statements::rollback_to_savepoint, "ROLLBACK TO task"},
        {&Statements::release_savepoint, "RELEASE task"},

        {&Statements::find_message,
         "SELECT header_id, response, job_id FROM messages WHERE bundle_id = ?1"},
        {&Statements::find_trigger, "SELECT id FROM jobs WHERE trigger_key = ?1"},
        {&Statements::insert_job,
         "INSERT INTO jobs (trigger_key, encounter, kind, payload, state, attempts, created_at, "
         "updated_at, next_attempt_at) VALUES (?1, ?2, ?3, ?4, 'queued', 0, ?5, ?5, ?5)"},
        {&Statements::insert_message,
         "INSERT INTO messages (bundle_id, header_id, response, job_id) VALUES (?1, ?2, ?3, ?4)"},
        {&Statements::upsert_subscription,
         "INSERT INTO subscriptions (subscription, last_event_number) VALUES (?1, ?2) "
         "ON CONFLICT (subscription) DO UPDATE SET "
         "last_event_number = max(last_event_number, excluded.last_event_number)"},
        {&Statements::last_event_number,
         "SELECT last_event_number FROM subscriptions WHERE subscription = ?1"},
        {&Statements::insert_note, "INSERT INTO admin_notes (event, fields) VALUES (?1, ?2)"},

        // Due queued jobs, longest due first, whose encounter has no job running under a live
        // lease. Walks jobs_due in order; the NOT EXISTS is a probe of the small partial index.
        {&Statements::lease_candidates,
         "SELECT q.id, q.encounter FROM jobs AS q "
         "WHERE q.state = 'queued' AND q.next_attempt_at <= ?1 AND NOT EXISTS ("
         "SELECT 1 FROM jobs AS r WHERE r.state = 'running' AND r.encounter = q.encounter "
         "AND r.lease_until >= ?1) "
         "ORDER BY q.next_attempt_at, q.id"},
        {&Statements::lease_job,
         "UPDATE jobs SET state = 'running', lease_until = ?2, attempts = attempts + 1, "
         "updated_at = ?3 WHERE id = ?1 AND state = 'queued' RETURNING " +
             columns},
        {&Statements::requeue_expired,
         "UPDATE jobs SET state = 'queued', next_attempt_at = ?1, lease_until = NULL, "
         "updated_at = ?1 WHERE state = 'running' AND lease_until < ?1"},
        {&Statements::complete,
         "UPDATE jobs SET state = 'done', outcome = ?2, lease_until = NULL, updated_at = ?3 "
         "WHERE id = ?1 AND state = 'running' AND (?4 IS NULL OR attempts = ?4)"},
        {&Statements::extend_lease,
         "UPDATE jobs SET lease_until = max(lease_until, ?3) "
         "WHERE id = ?1 AND state = 'running' AND attempts = ?2"},
        {&Statements::retry_later,
         "UPDATE jobs SET state = 'queued', next_attempt_at = ?2, last_error = ?3, "
         "lease_until = NULL, updated_at = ?4 WHERE id = ?1 AND state = 'running' "
         "AND (?5 IS NULL OR attempts = ?5)"},
        {&Statements::dead_letter,
         "UPDATE jobs SET state = 'dead', last_error = ?2, outcome = ?3, lease_until = NULL, "
         "updated_at = ?4 WHERE id = ?1 AND state = 'running' AND (?5 IS NULL OR attempts = ?5)"},
        {&Statements::retry,
         "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = ?2, "
         "lease_until = NULL, updated_at = ?2 WHERE id = ?1 AND state IN ('done', 'dead')"},
        {&Statements::job_exists, "SELECT 1 FROM jobs WHERE id = ?1"},

        {&Statements::get_job, "SELECT " + columns + " FROM jobs WHERE id = ?1"},
        // An unset filter is bound as NULL and matches everything.
        {&Statements::list_jobs,
         "SELECT " + columns + " FROM jobs WHERE " + kListFilter + " ORDER BY id LIMIT ?4"},
        {&Statements::list_jobs_newest_first,
         "SELECT " + columns + " FROM jobs WHERE " + kListFilter + " ORDER BY id DESC LIMIT ?4"},
        {&Statements::count_in_state, "SELECT count(*) FROM jobs WHERE state = ?1"},
        // Reaches the waiting rows through jobs_due: during an outage they are the many.
        {&Statements::oldest_waiting,
         "SELECT min(created_at) FROM jobs WHERE state IN ('queued', 'running')"},
    };
    for (const auto& [member, text] : sql) {
        auto prepared = SqliteStatement::Prepare(db, text);
        if (!prepared) {
            return prepared.error();
        }
        (*statements).*member = std::move(*prepared);
    }
    return statements;
}

void SqliteJobStore::ConnectionCloser::operator()(sqlite3* db) const {
    // close_v2: should a statement still be alive, the connection closes once it is finalized
    // instead of leaking.
    sqlite3_close_v2(db);
}

Result<std::unique_ptr<SqliteJobStore>> SqliteJobStore::Open(const std::string& path,
                                                             const StoreOptions& options) {
    sqlite3* raw = nullptr;
    // NOMUTEX: one thread at a time uses the connection (this one, then the store's thread), so
    // SQLite's own locking would only cost.
    const int flags =
        options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    Connection db(raw);  // a failed open still returns a handle that must be closed
    if (rc != SQLITE_OK) {
        return options.read_only && (rc & 0xff) == SQLITE_CANTOPEN ? Error::kNotFound
                                                                   : Error::kStoreFailed;
    }
    sqlite3_extended_result_codes(db.get(), 1);
    sqlite3_busy_timeout(db.get(),
                         static_cast<int>(std::min<std::int64_t>(options.busy_timeout.count(),
                                                                 std::numeric_limits<int>::max())));

    if (options.read_only) {
        // As it is: the service that writes it sets the journal mode and migrates. A newer
        // schema would be misread; an older one still has every column a read needs.
        auto version = QueryValue<std::int64_t>(db.get(), "PRAGMA user_version");
        if (!version || *version < 1 || static_cast<std::size_t>(*version) > kMigrations.size()) {
            return Error::kStoreFailed;
        }
        auto statements = Statements::Prepare(db.get());
        if (!statements) {
            return statements.error();
        }
        return std::unique_ptr<SqliteJobStore>(
            new SqliteJobStore(std::move(db), std::move(*statements), options));
    }
    // Some file systems (network mounts) cannot do WAL and SQLite then quietly keeps the old
    // journal; group commit and concurrent readers rely on WAL, so refuse rather than degrade.
    auto mode = QueryValue<std::string>(db.get(), "PRAGMA journal_mode = WAL");
    if (!mode || *mode != "wal") {
        return Error::kStoreFailed;
    }
    // In WAL mode NORMAL survives a crash of the process but may lose the last commits on a
    // power cut; FULL syncs the WAL on every commit, which is what "acknowledged" promises.
    const std::string synchronous = options.synchronous_full ? "FULL" : "NORMAL";
    if (auto set = Exec(db.get(), "PRAGMA synchronous = " + synchronous); !set) {
        return set.error();
    }
    if (auto set = Exec(db.get(), "PRAGMA foreign_keys = ON"); !set) {
        return set.error();
    }
    if (auto migrated = adapter::Migrate(db.get()); !migrated) {
        return migrated.error();
    }
    auto statements = Statements::Prepare(db.get());
    if (!statements) {
        return statements.error();
    }
    return std::unique_ptr<SqliteJobStore>(
        new SqliteJobStore(std::move(db), std::move(*statements), options));
}

// What group commit runs around a batch, in SQLite's words.
class SqliteJobStore::Hooks final : public detail::TransactionHooks {
public:
    explicit Hooks(SqliteJobStore& store) : store_(store) {}

    bool Begin() override { return Exec(store_.statements_->begin); }
    bool Savepoint() override { return Exec(store_.statements_->savepoint); }
    bool RollbackToSavepoint() override { return Exec(store_.statements_->rollback_to_savepoint); }
    bool ReleaseSavepoint() override { return Exec(store_.statements_->release_savepoint); }
    bool Commit() override { return Exec(store_.statements_->commit); }
    // Should the rollback fail, the transaction stays open: the next batch's BEGIN then fails
    // and fails its batch too, so nothing ever commits on top of half a batch.
    void Rollback() override { Exec(store_.statements_->rollback); }
    bool InTransaction() override { return sqlite3_get_autocommit(store_.db_.get()) == 0; }
    // The thread owns the connection to the end: statements first, then the connection (which
    // checkpoints the WAL into the database file).
    void Finish() override {
        store_.statements_.reset();
        store_.db_.reset();
    }

private:
    static bool Exec(SqliteStatement& statement) {
        ResetOnExit reset(statement);
        return statement.Run().has_value();
    }

    SqliteJobStore& store_;
};

Result<SchemaMigration> SqliteJobStore::Migrate(const std::string& path) {
    sqlite3* raw = nullptr;
    const int rc =
        sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    Connection db(raw);
    if (rc != SQLITE_OK) {
        return Error::kStoreFailed;
    }
    sqlite3_busy_timeout(db.get(), static_cast<int>(StoreOptions{}.busy_timeout.count()));
    return adapter::Migrate(db.get());
}

SqliteJobStore::SqliteJobStore(Connection db, std::unique_ptr<Statements> statements,
                               const StoreOptions& options)
    : options_(options),
      db_(std::move(db)),
      statements_(std::move(statements)),
      hooks_(std::make_unique<Hooks>(*this)),
      queue_(*hooks_, options.max_batch_delay, options.max_batch_size) {
    queue_.Start();
}

SqliteJobStore::~SqliteJobStore() { Close(); }

void SqliteJobStore::Close() { queue_.Close(); }

SqliteJobStore::Stats SqliteJobStore::stats() const { return queue_.stats(); }

template <typename T>
void SqliteJobStore::Submit(bool writes, std::function<Result<T>()> body,
                            std::function<void(Result<T>)> done) {
    queue_.Submit<T>(writes, std::move(body), std::move(done));
}

template <typename T>
Result<T> SqliteJobStore::SubmitAndWait(bool writes, std::function<Result<T>()> body) {
    return queue_.SubmitAndWait<T>(writes, std::move(body));
}

// ---- The calls: each one a task on the store's thread.

void SqliteJobStore::EnqueueAsync(NewJob job, Callback<Enqueued> done) {
    Submit<Enqueued>(
        true, [this, job = std::move(job)] { return DoEnqueue(job); }, std::move(done));
}

Result<std::vector<Enqueued>> SqliteJobStore::CommitPollPage(PollPage page) {
    return SubmitAndWait<std::vector<Enqueued>>(true, [&] { return DoCommitPollPage(page); });
}

Result<std::optional<PollCursor>> SqliteJobStore::ReadPollCursor(const std::string& poll) {
    return SubmitAndWait<std::optional<PollCursor>>(false, [&] { return DoReadPollCursor(poll); });
}

void SqliteJobStore::LastEventNumberAsync(std::string subscription, Callback<std::int64_t> done) {
    Submit<std::int64_t>(
        false,
        [this, subscription = std::move(subscription)] { return DoLastEventNumber(subscription); },
        std::move(done));
}

void SqliteJobStore::LeaseAsync(TimePoint now, std::chrono::milliseconds lease, std::size_t max,
                                Callback<std::vector<Job>> done) {
    Submit<std::vector<Job>>(
        true, [this, now, lease, max] { return DoLease(now, lease, max); }, std::move(done));
}

void SqliteJobStore::RequeueExpiredAsync(TimePoint now, Callback<std::size_t> done) {
    Submit<std::size_t>(
        true, [this, now] { return DoRequeueExpired(now); }, std::move(done));
}

void SqliteJobStore::CompleteAsync(std::int64_t id, std::string outcome, std::optional<int> attempt,
                                   Callback<void> done) {
    Submit<void>(
        true,
        [this, id, outcome = std::move(outcome), attempt] {
            return DoComplete(id, outcome, attempt);
        },
        std::move(done));
}

void SqliteJobStore::ExtendLeaseAsync(std::int64_t id, int attempt, TimePoint until,
                                      Callback<void> done) {
    Submit<void>(
        true,
        [this, id, attempt, until]() -> Result<void> {
            auto& statement = statements_->extend_lease;
            ResetOnExit reset(statement);
            statement.Bind(1, id);
            statement.Bind(2, static_cast<std::int64_t>(attempt));
            statement.Bind(3, Millis(until));
            if (auto updated = statement.Run(); !updated) {
                return updated;
            }
            return sqlite3_changes(db_.get()) > 0 ? Result<void>() : MissingOrConflict(id);
        },
        std::move(done));
}

void SqliteJobStore::RetryLaterAsync(std::int64_t id, TimePoint next_attempt, std::string error,
                                     std::optional<int> attempt, Callback<void> done) {
    Submit<void>(
        true,
        [this, id, next_attempt, error = std::move(error), attempt] {
            return DoRetryLater(id, next_attempt, error, attempt);
        },
        std::move(done));
}

void SqliteJobStore::DeadLetterAsync(std::int64_t id, std::string reason, std::string outcome,
                                     std::optional<int> attempt, Callback<void> done) {
    Submit<void>(
        true,
        [this, id, reason = std::move(reason), outcome = std::move(outcome), attempt] {
            return DoDeadLetter(id, reason, outcome, attempt);
        },
        std::move(done));
}

Result<void> SqliteJobStore::Retry(std::int64_t id, TimePoint now) {
    return SubmitAndWait<void>(true, [&] { return DoRetry(id, now); });
}

Result<std::vector<std::int64_t>> SqliteJobStore::RetryJobs(const std::vector<std::int64_t>& ids,
                                                            TimePoint now, AdminNote note) {
    return SubmitAndWait<std::vector<std::int64_t>>(true,
                                                    [&] { return DoRetryJobs(ids, now, note); });
}

Result<std::size_t> SqliteJobStore::PurgeDone(TimePoint done_before, AdminNote note) {
    return SubmitAndWait<std::size_t>(true, [&] { return DoPurgeDone(done_before, note); });
}

Result<void> SqliteJobStore::AddAdminNote(AdminNote note) {
    return SubmitAndWait<void>(true, [&] { return DoInsertNote(note); });
}

Result<std::vector<AdminNote>> SqliteJobStore::PendingAdminNotes(std::size_t max) {
    return SubmitAndWait<std::vector<AdminNote>>(false, [&] { return DoPendingAdminNotes(max); });
}

Result<void> SqliteJobStore::ForgetAdminNotes(std::int64_t up_to_id) {
    return SubmitAndWait<void>(true, [&] { return DoForgetAdminNotes(up_to_id); });
}

Result<Job> SqliteJobStore::Get(std::int64_t id) {
    return SubmitAndWait<Job>(false, [&] { return DoGet(id); });
}

Result<std::vector<Job>> SqliteJobStore::List(const JobFilter& filter) {
    return SubmitAndWait<std::vector<Job>>(false, [&] { return DoList(filter); });
}

Result<std::size_t> SqliteJobStore::CountByState(JobState state) {
    return SubmitAndWait<std::size_t>(false, [&] { return DoCountByState(state); });
}

Result<std::optional<TimePoint>> SqliteJobStore::OldestWaiting() {
    return SubmitAndWait<std::optional<TimePoint>>(false, [&] { return DoOldestWaiting(); });
}

// ---- Task bodies, on the store's thread.

Result<Enqueued> SqliteJobStore::DoEnqueue(const NewJob& job) {
    auto& st = *statements_;
    if (job.message) {
        ResetOnExit reset(st.find_message);
        st.find_message.Bind(1, job.message->bundle_id);
        auto row = st.find_message.Next();
        if (!row) {
            return row.error();
        }
        if (*row) {
            if (st.find_message.Text(0) != job.message->header_id) {
                // A Bundle id reused for another message: answering with the first message's
                // response would acknowledge something never recorded.
                return Error::kConflict;
            }
            return Enqueued{st.find_message.Int64(2), false, st.find_message.Text(1)};
        }
    }

    Enqueued enqueued;
    {
        ResetOnExit reset(st.find_trigger);
        st.find_trigger.Bind(1, job.trigger_key);
        auto row = st.find_trigger.Next();
        if (!row) {
            return row.error();
        }
        if (*row) {
            enqueued.job_id = st.find_trigger.Int64(0);
        }
    }
    if (enqueued.job_id == 0) {
        ResetOnExit reset(st.insert_job);
        st.insert_job.Bind(1, job.trigger_key);
        st.insert_job.Bind(2, job.encounter);
        st.insert_job.Bind(3, job.kind);
        st.insert_job.Bind(4, job.payload);
        st.insert_job.Bind(5, Millis(options_.now()));
        if (auto inserted = st.insert_job.Run(); !inserted) {
            return inserted.error();
        }
        enqueued.job_id = sqlite3_last_insert_rowid(db_.get());
        enqueued.created = true;
        if (job.note) {
            if (auto noted = DoInsertNote(detail::NoteOfNewJob(*job.note, enqueued.job_id));
                !noted) {
                return noted.error();
            }
        }
    }

    if (job.message) {
        // Also for a known trigger: a later re-send of this message is then recognised by its
        // Bundle id without depending on how the trigger key was derived.
        ResetOnExit reset(st.insert_message);
        st.insert_message.Bind(1, job.message->bundle_id);
        st.insert_message.Bind(2, job.message->header_id);
        st.insert_message.Bind(3, job.message->response);
        st.insert_message.Bind(4, enqueued.job_id);
        if (auto inserted = st.insert_message.Run(); !inserted) {
            return inserted.error();
        }
    }
    if (job.subscription_event) {
        // max(): notifications may arrive out of order, and a late one must not move the
        // number back and make a gap look like it was filled.
        ResetOnExit reset(st.upsert_subscription);
        st.upsert_subscription.Bind(1, job.subscription_event->subscription);
        st.upsert_subscription.Bind(2, job.subscription_event->event_number);
        if (auto upserted = st.upsert_subscription.Run(); !upserted) {
            return upserted.error();
        }
    }
    return enqueued;
}

Result<std::vector<Enqueued>> SqliteJobStore::DoCommitPollPage(PollPage& page) {
    auto out = detail::EnqueuePage(page, [this](const NewJob& job) { return DoEnqueue(job); });
    if (!out) {
        return out;
    }
    auto statement = SqliteStatement::Prepare(
        db_.get(),
        "INSERT INTO poll_cursors (poll, high_water, floor, updated_at) VALUES (?1, ?2, ?3, ?4) "
        "ON CONFLICT (poll) DO UPDATE SET high_water = max(high_water, excluded.high_water), "
        "floor = excluded.floor, updated_at = excluded.updated_at");
    if (!statement) {
        return statement.error();
    }
    statement->Bind(1, page.poll);
    statement->Bind(2, Millis(page.cursor.high_water));
    statement->Bind(3, Millis(page.cursor.floor));
    statement->Bind(4, Millis(options_.now()));
    if (auto stored = statement->Run(); !stored) {
        return stored.error();
    }
    return out;
}

Result<std::optional<PollCursor>> SqliteJobStore::DoReadPollCursor(const std::string& poll) {
    auto statement = SqliteStatement::Prepare(
        db_.get(), "SELECT high_water, floor FROM poll_cursors WHERE poll = ?1");
    if (!statement) {
        return statement.error();
    }
    statement->Bind(1, poll);
    auto row = statement->Next();
    if (!row) {
        return row.error();
    }
    if (!*row) {
        return std::optional<PollCursor>();
    }
    return std::optional<PollCursor>(
        PollCursor{FromMillis(statement->Int64(0)), FromMillis(statement->Int64(1))});
}

Result<std::int64_t> SqliteJobStore::DoLastEventNumber(const std::string& subscription) {
    auto& statement = statements_->last_event_number;
    ResetOnExit reset(statement);
    statement.Bind(1, subscription);
    auto row = statement.Next();
    if (!row) {
        return row.error();
    }
    return *row ? statement.Int64(0) : 0;
}

Result<std::vector<Job>> SqliteJobStore::DoLease(TimePoint now, std::chrono::milliseconds lease,
                                                 std::size_t max) {
    auto& st = *statements_;
    // Choose first, update after: changing rows under a running SELECT on the same table
    // would let the scan meet its own updates.
    std::vector<std::int64_t> ids;
    {
        ResetOnExit reset(st.lease_candidates);
        st.lease_candidates.Bind(1, Millis(now));
        std::unordered_set<std::string> encounters;
        while (ids.size() < max) {
            auto row = st.lease_candidates.Next();
            if (!row) {
                return row.error();
            }
            if (!*row) {
                break;
            }
            // One job per encounter per call: the candidates query only sees jobs already
            // running, not the ones this call is about to start.
            if (encounters.insert(st.lease_candidates.Text(1)).second) {
                ids.push_back(st.lease_candidates.Int64(0));
            }
        }
    }
    std::vector<Job> jobs;
    jobs.reserve(ids.size());
    for (std::int64_t id : ids) {
        ResetOnExit reset(st.lease_job);
        st.lease_job.Bind(1, id);
        st.lease_job.Bind(2, Millis(now + lease));
        st.lease_job.Bind(3, Millis(now));
        auto row = st.lease_job.Next();
        if (!row) {
            return row.error();
        }
        if (!*row) {
            return Error::kStoreFailed;  // chosen in this transaction, so it must still be queued
        }
        auto job = ReadJob(st.lease_job);
        if (!job) {
            return job.error();
        }
        jobs.push_back(std::move(*job));
    }
    return jobs;
}

Result<std::size_t> SqliteJobStore::DoRequeueExpired(TimePoint now) {
    auto& statement = statements_->requeue_expired;
    ResetOnExit reset(statement);
    statement.Bind(1, Millis(now));
    if (auto updated = statement.Run(); !updated) {
        return updated.error();
    }
    return static_cast<std::size_t>(sqlite3_changes(db_.get()));
}

Result<void> SqliteJobStore::MissingOrConflict(std::int64_t id) {
    auto& statement = statements_->job_exists;
    ResetOnExit reset(statement);
    statement.Bind(1, id);
    auto row = statement.Next();
    if (!row) {
        return row.error();
    }
    return *row ? Error::kConflict : Error::kNotFound;
}

namespace {

// NULL when the caller does not fence on the attempt.
void BindAttempt(detail::SqliteStatement& statement, int index, std::optional<int> attempt) {
    statement.Bind(index, attempt ? std::optional<std::int64_t>(*attempt) : std::nullopt);
}

}  // namespace

Result<void> SqliteJobStore::DoComplete(std::int64_t id, const std::string& outcome,
                                        std::optional<int> attempt) {
    auto& statement = statements_->complete;
    ResetOnExit reset(statement);
    statement.Bind(1, id);
    statement.Bind(2, outcome);
    statement.Bind(3, Millis(options_.now()));
    BindAttempt(statement, 4, attempt);
    if (auto updated = statement.Run(); !updated) {
        return updated;
    }
    return sqlite3_changes(db_.get()) > 0 ? Result<void>() : MissingOrConflict(id);
}

Result<void> SqliteJobStore::DoRetryLater(std::int64_t id, TimePoint next_attempt,
                                          const std::string& error, std::optional<int> attempt) {
    auto& statement = statements_->retry_later;
    ResetOnExit reset(statement);
    statement.Bind(1, id);
    statement.Bind(2, Millis(next_attempt));
    statement.Bind(3, error);
    statement.Bind(4, Millis(options_.now()));
    BindAttempt(statement, 5, attempt);
    if (auto updated = statement.Run(); !updated) {
        return updated;
    }
    return sqlite3_changes(db_.get()) > 0 ? Result<void>() : MissingOrConflict(id);
}

Result<void> SqliteJobStore::DoDeadLetter(std::int64_t id, const std::string& reason,
                                          const std::string& outcome, std::optional<int> attempt) {
    auto& statement = statements_->dead_letter;
    ResetOnExit reset(statement);
    statement.Bind(1, id);
    statement.Bind(2, reason);
    statement.Bind(3, outcome);
    statement.Bind(4, Millis(options_.now()));
    BindAttempt(statement, 5, attempt);
    if (auto updated = statement.Run(); !updated) {
        return updated;
    }
    return sqlite3_changes(db_.get()) > 0 ? Result<void>() : MissingOrConflict(id);
}

Result<void> SqliteJobStore::DoRetry(std::int64_t id, TimePoint now) {
    auto& statement = statements_->retry;
    ResetOnExit reset(statement);
    statement.Bind(1, id);
    statement.Bind(2, Millis(now));
    if (auto updated = statement.Run(); !updated) {
        return updated;
    }
    return sqlite3_changes(db_.get()) > 0 ? Result<void>() : MissingOrConflict(id);
}

Result<std::vector<std::int64_t>> SqliteJobStore::DoRetryJobs(const std::vector<std::int64_t>& ids,
                                                              TimePoint now, AdminNote& note) {
    return detail::RetryEach(
        ids, note, [&](std::int64_t id) { return DoRetry(id, now); },
        [this](const AdminNote& note) { return DoInsertNote(note); });
}

Result<std::size_t> SqliteJobStore::DoPurgeDone(TimePoint done_before, AdminNote& note) {
    // Rare and by hand: prepared here rather than kept for the store's life.
    const std::string done = "SELECT id FROM jobs WHERE state = 'done' AND updated_at < ?1";
    for (const std::string& sql : {"DELETE FROM messages WHERE job_id IN (" + done + ")",
                                   "DELETE FROM jobs WHERE id IN (" + done + ")"}) {
        auto statement = SqliteStatement::Prepare(db_.get(), sql);
        if (!statement) {
            return statement.error();
        }
        statement->Bind(1, Millis(done_before));
        if (auto deleted = statement->Run(); !deleted) {
            return deleted.error();
        }
    }
    const auto count = static_cast<std::size_t>(sqlite3_changes(db_.get()));
    note.fields.emplace_back("count", std::to_string(count));
    if (auto noted = DoInsertNote(note); !noted) {
        return noted.error();
    }
    return count;
}

Result<void> SqliteJobStore::DoInsertNote(const AdminNote& note) {
    const std::string fields = detail::EncodeNoteFields(note);
    auto& statement = statements_->insert_note;
    ResetOnExit reset(statement);
    statement.Bind(1, note.event);
    statement.Bind(2, fields);
    return statement.Run();
}

Result<std::vector<AdminNote>> SqliteJobStore::DoPendingAdminNotes(std::size_t max) {
    auto statement = SqliteStatement::Prepare(
        db_.get(), "SELECT id, event, fields FROM admin_notes ORDER BY id LIMIT ?1");
    if (!statement) {
        return statement.error();
    }
    statement->Bind(1, static_cast<std::int64_t>(
                           std::min<std::size_t>(max, std::numeric_limits<std::int64_t>::max())));
    std::vector<AdminNote> notes;
    for (;;) {
        auto row = statement->Next();
        if (!row) {
            return row.error();
        }
        if (!*row) {
            return notes;
        }
        AdminNote note;
        note.id = statement->Int64(0);
        note.event = statement->Text(1);
        if (!detail::DecodeNoteFields(statement->Text(2), note)) {
            return Error::kStoreFailed;
        }
        notes.push_back(std::move(note));
    }
}

Result<void> SqliteJobStore::DoForgetAdminNotes(std::int64_t up_to_id) {
    auto statement = SqliteStatement::Prepare(db_.get(), "DELETE FROM admin_notes WHERE id <= ?1");
    if (!statement) {
        return statement.error();
    }
    statement->Bind(1, up_to_id);
    return statement->Run();
}

Result<Job> SqliteJobStore::DoGet(std::int64_t id) {
    auto& statement = statements_->get_job;
    ResetOnExit reset(statement);
    statement.Bind(1, id);
    auto row = statement.Next();
    if (!row) {
        return row.error();
    }
    if (!*row) {
        return Error::kNotFound;
    }
    return ReadJob(statement);
}

Result<std::vector<Job>> SqliteJobStore::DoList(const JobFilter& filter) {
    const auto limit = static_cast<std::int64_t>(
        std::min<std::size_t>(filter.limit, std::numeric_limits<std::int64_t>::max()));
    auto& statement =
        filter.newest_first ? statements_->list_jobs_newest_first : statements_->list_jobs;
    ResetOnExit reset(statement);
    if (filter.state) {
        statement.Bind(1, ToString(*filter.state));
    }
    if (filter.changed_since) {
        statement.Bind(2, Millis(*filter.changed_since));
    }
    if (!filter.encounter.empty()) {
        statement.Bind(3, filter.encounter);
    }
    statement.Bind(4, limit);
    std::vector<Job> jobs;
    for (;;) {
        auto row = statement.Next();
        if (!row) {
            return row.error();
        }
        if (!*row) {
            return jobs;
        }
        auto job = ReadJob(statement);
        if (!job) {
            return job.error();
        }
        jobs.push_back(std::move(*job));
    }
}

Result<std::size_t> SqliteJobStore::DoCountByState(JobState state) {
    auto& statement = statements_->count_in_state;
    ResetOnExit reset(statement);
    statement.Bind(1, ToString(state));
    auto row = statement.Next();
    if (!row) {
        return row.error();
    }
    if (!*row) {
        return Error::kStoreFailed;
    }
    return static_cast<std::size_t>(statement.Int64(0));
}

Result<std::optional<TimePoint>> SqliteJobStore::DoOldestWaiting() {
    auto& statement = statements_->oldest_waiting;
    ResetOnExit reset(statement);
    auto row = statement.Next();
    if (!row) {
        return row.error();
    }
    if (!*row) {
        return Error::kStoreFailed;
    }
    const std::optional<std::int64_t> millis = statement.OptionalInt64(0);  // NULL: none
    if (!millis) return std::optional<TimePoint>();
    return std::optional<TimePoint>(FromMillis(*millis));
}

}  // namespace microcare::adapter
