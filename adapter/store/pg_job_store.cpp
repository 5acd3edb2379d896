#include "adapter/store/pg_job_store.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <limits>
#include <random>
#include <string_view>
#include <utility>

#include "adapter/store/job_rows.hpp"
#include "adapter/thread_name.hpp"

namespace microcare::adapter {
namespace {

using detail::FromMillis;
using detail::kJobColumns;
using detail::Millis;
using detail::PgConnection;
using detail::PgParams;
using detail::PgResult;

// Schema migrations, in order: migration i takes schema_version i to i + 1. A released
// migration is never edited; a change is a new entry. The same tables as the SQLite store's
// (its three migrations, here as one first version), times as milliseconds since the epoch.
constexpr std::array<std::string_view, 2> kMigrations = {
    R"sql(
CREATE TABLE jobs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    trigger_key TEXT NOT NULL UNIQUE,
    encounter TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_error TEXT NOT NULL DEFAULT '',
    outcome TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_due ON jobs (next_attempt_at, id) WHERE state = 'queued';
CREATE INDEX jobs_running_encounter ON jobs (encounter, lease_until) WHERE state = 'running';
CREATE INDEX jobs_state_updated ON jobs (state, updated_at);
CREATE INDEX jobs_encounter ON jobs (encounter);
CREATE TABLE messages (
    bundle_id TEXT PRIMARY KEY,
    header_id TEXT NOT NULL,
    response TEXT NOT NULL,
    job_id BIGINT NOT NULL REFERENCES jobs (id)
);
CREATE INDEX messages_job ON messages (job_id);
CREATE TABLE subscriptions (
    subscription TEXT PRIMARY KEY,
    last_event_number BIGINT NOT NULL
);
CREATE TABLE admin_notes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event TEXT NOT NULL,
    fields TEXT NOT NULL
);
CREATE TABLE poll_cursors (
    poll TEXT PRIMARY KEY,
    high_water BIGINT NOT NULL,
    floor BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
)sql",
    // The audit trail, one chain for every replica (PgAuditTable): its sealed lines, and its
    // head with the sealed checkpoint, moved in the transaction that appends.
    R"sql(
CREATE TABLE audit_records (
    seq BIGINT PRIMARY KEY,
    line TEXT NOT NULL
);
CREATE TABLE audit_head (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    checkpoint TEXT NOT NULL
);
INSERT INTO audit_head (seq, hash, checkpoint)
    VALUES (0, '0000000000000000000000000000000000000000000000000000000000000000', '');
-- Which store is moving a note into the trail, and until when (PendingAdminNotes).
ALTER TABLE admin_notes ADD COLUMN claimed_by BIGINT, ADD COLUMN claimed_until BIGINT;
)sql",
};

// The channel of "work may be available": NOTIFY'd in the transaction that makes a job due (a
// new job) or frees an encounter (a job finished), delivered by PostgreSQL only when that
// transaction commits, and once per transaction however many jobs it carried.
constexpr std::string_view kWorkChannel = "microcare_jobs";
constexpr std::string_view kNotifyWork = "pg_notify('microcare_jobs', '')";

// The advisory lock that serialises migrations across every store starting at once: the
// two-int key space, apart from the one-bigint keys of encounters.
constexpr std::string_view kMigrationLock = "SELECT pg_advisory_xact_lock(1296256067, 1)";

// A store's name among the stores of one database: random, positive.
std::int64_t RandomClaimant() {
    std::random_device random;
    const std::uint64_t high = random(), low = random();
    return static_cast<std::int64_t>(((high << 32) | low) >> 1);
}

// The schema version, or nothing when the database has no MicroCare schema yet.
Result<std::optional<std::int64_t>> SchemaVersion(PgConnection& db) {
    auto exists = db.Exec("SELECT to_regclass('schema_version') IS NOT NULL");
    if (!exists) {
        return exists.error();
    }
    if (exists->Text(0, 0) != "t") {
        return std::optional<std::int64_t>();
    }
    auto version = db.Exec("SELECT max(version) FROM schema_version");
    if (!version) {
        return version.error();
    }
    return std::optional<std::int64_t>(version->OptionalInt64(0, 0).value_or(0));
}

Result<SchemaMigration> Migrate(PgConnection& db) {
    if (auto begun = db.ExecScript("BEGIN"); !begun) {
        return begun.error();
    }
    SchemaMigration change;
    auto migrate = [&db, &change]() -> Result<void> {
        // Several replicas starting at once: the first migrates, the others wait here and then
        // find the schema current. The lock goes with the transaction, even if the process dies.
        if (auto locked = db.Exec(kMigrationLock); !locked) {
            return locked.error();
        }
        if (auto created = db.ExecScript(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, "
                "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())");
            !created) {
            return created;
        }
        auto version = SchemaVersion(db);
        if (!version) {
            return version.error();
        }
        const std::int64_t from = version->value_or(0);
        if (from < 0 || static_cast<std::size_t>(from) > kMigrations.size()) {
            return Error::kStoreFailed;  // written by a newer release: this one would misread it
        }
        change = {from, static_cast<std::int64_t>(kMigrations.size())};
        for (auto step = static_cast<std::size_t>(from); step < kMigrations.size(); ++step) {
            if (auto done = db.ExecScript(std::string(kMigrations[step])); !done) {
                return done;
            }
            if (auto noted = db.Exec("INSERT INTO schema_version (version) VALUES ($1)",
                                     PgParams().Add(static_cast<std::int64_t>(step + 1)));
                !noted) {
                return noted.error();
            }
        }
        return {};
    };
    if (auto migrated = migrate(); !migrated) {
        static_cast<void>(db.ExecScript("ROLLBACK"));
        return migrated.error();
    }
    if (auto committed = db.ExecScript("COMMIT"); !committed) {
        return committed.error();
    }
    return change;
}

// The session's settings: how long a statement waits for a lock another process holds (as
// busy_timeout does for SQLite), and whether a commit waits for its WAL flush.
Result<void> ConfigureSession(PgConnection& db, const StoreOptions& options) {
    // client_min_messages: libpq prints a server's notices on stderr ("already exists,
    // skipping"); the store reports by its results, never by the server's text.
    std::string sql = "SET client_min_messages = warning; SET lock_timeout = " +
                      std::to_string(options.busy_timeout.count()) + ";";
    sql +=
        options.synchronous_full ? "SET synchronous_commit = on;" : "SET synchronous_commit = off;";
    if (options.read_only) {
        sql += "SET default_transaction_read_only = on;";
    }
    return db.ExecScript(sql);
}

// Reads the rows of a kJobColumns query.
Result<std::vector<Job>> ReadJobs(const PgResult& rows) {
    std::vector<Job> jobs;
    jobs.reserve(static_cast<std::size_t>(rows.Rows()));
    for (int row = 0; row < rows.Rows(); ++row) {
        Job job;
        job.id = rows.Int64(row, 0);
        job.trigger_key = rows.Text(row, 1);
        job.encounter = rows.Text(row, 2);
        job.kind = rows.Text(row, 3);
        job.payload = rows.Text(row, 4);
        auto state = detail::StateFromText(rows.Text(row, 5));
        if (!state) {
            return Error::kStoreFailed;
        }
        job.state = *state;
        job.attempts = static_cast<int>(rows.Int64(row, 6));
        job.created_at = FromMillis(rows.Int64(row, 7));
        job.updated_at = FromMillis(rows.Int64(row, 8));
        job.next_attempt_at = FromMillis(rows.Int64(row, 9));
        if (auto lease_until = rows.OptionalInt64(row, 10)) {
            job.lease_until = FromMillis(*lease_until);
        }
        job.last_error = rows.Text(row, 11);
        job.outcome = rows.Text(row, 12);
        jobs.push_back(std::move(job));
    }
    return jobs;
}

std::int64_t Limit(std::size_t value) {
    return static_cast<std::int64_t>(
        std::min<std::size_t>(value, std::numeric_limits<std::int64_t>::max()));
}

}  // namespace

// What group commit runs around a batch, in PostgreSQL's words, and the reconnect.
class PgJobStore::Hooks final : public detail::TransactionHooks {
public:
    explicit Hooks(PgJobStore& store) : store_(store) {}

    bool Ready() override {
        auto& db = store_.db_;
        db.Poll();
        if (!db.Ok()) {
            // Lost (the server restarted, the connection was killed): the batch that met it
            // has failed; this one reconnects, and the session is set up again.
            if (!db.Reset() || !ConfigureSession(db, store_.options_)) {
                return false;
            }
        }
        if (!db.Idle()) {
            // A transaction left open by a failed ROLLBACK: nothing may commit on top of it.
            static_cast<void>(db.ExecScript("ROLLBACK"));
        }
        return db.Idle();
    }
    bool Begin() override { return Exec("BEGIN"); }
    bool Savepoint() override { return Exec("SAVEPOINT task"); }
    bool RollbackToSavepoint() override { return Exec("ROLLBACK TO SAVEPOINT task"); }
    // No round trip: PostgreSQL keeps a savepoint until the transaction ends, and the next
    // task's SAVEPOINT of the same name is the one a ROLLBACK TO reaches. (Released or not, a
    // task's subtransaction lasts until COMMIT.)
    bool ReleaseSavepoint() override { return true; }
    bool Commit() override {
        // COMMIT of a transaction in error answers ROLLBACK without an error: only an idle
        // connection after a successful COMMIT means the batch is committed.
        return Exec("COMMIT") && store_.db_.Idle();
    }
    void Rollback() override { static_cast<void>(Exec("ROLLBACK")); }
    bool InTransaction() override { return store_.db_.InTransaction(); }
    void Finish() override { store_.db_ = {}; }

private:
    bool Exec(const char* sql) { return store_.db_.ExecScript(sql).has_value(); }

    PgJobStore& store_;
};

Result<std::unique_ptr<PgJobStore>> PgJobStore::Open(const std::string& url,
                                                     const StoreOptions& options) {
    auto db = PgConnection::Connect(url);
    if (!db) {
        return db.error();
    }
    if (auto configured = ConfigureSession(*db, options); !configured) {
        return configured.error();
    }
    if (options.read_only) {
        auto version = SchemaVersion(*db);
        if (!version) {
            return version.error();
        }
        if (!*version || **version < 1) {
            return Error::kNotFound;
        }
        if (static_cast<std::size_t>(**version) > kMigrations.size()) {
            return Error::kStoreFailed;
        }
    } else if (auto migrated = adapter::Migrate(*db); !migrated) {
        return migrated.error();
    }
    return std::unique_ptr<PgJobStore>(new PgJobStore(url, std::move(*db), options));
}

std::int64_t PgJobStore::NewestSchemaVersion() {
    return static_cast<std::int64_t>(kMigrations.size());
}

Result<SchemaMigration> PgJobStore::Migrate(const std::string& url) {
    auto db = PgConnection::Connect(url);
    if (!db) {
        return db.error();
    }
    if (auto configured = ConfigureSession(*db, StoreOptions{}); !configured) {
        return configured.error();
    }
    return adapter::Migrate(*db);
}

PgJobStore::PgJobStore(std::string url, detail::PgConnection connection,
                       const StoreOptions& options)
    : options_(options),
      url_(std::move(url)),
      claimant_(RandomClaimant()),
      db_(std::move(connection)),
      hooks_(std::make_unique<Hooks>(*this)),
      queue_(*hooks_, options.max_batch_delay, options.max_batch_size) {
    queue_.Start();
}

PgJobStore::~PgJobStore() { Close(); }

void PgJobStore::Close() {
    StopListener();
    queue_.Close();
}

void PgJobStore::OnWorkAvailable(std::function<void()> on_work) {
    const bool listen = static_cast<bool>(on_work);
    {
        std::lock_guard lock(on_work_mutex_);  // CallOnWork holds it while it calls
        on_work_ = std::move(on_work);
    }
    std::lock_guard lock(listener_mutex_);
    if (listen && !listener_.joinable()) {
        stop_listener_fd_ = ::eventfd(0, EFD_CLOEXEC);
        if (stop_listener_fd_ >= 0) {
            listener_ = std::thread([this] {
                NameThisThread("microcare-listen");
                Listen();
            });
        }
    }
}

void PgJobStore::StopListener() {
    std::lock_guard lock(listener_mutex_);
    if (!listener_.joinable()) {
        return;
    }
    const std::uint64_t one = 1;
    static_cast<void>(::write(stop_listener_fd_, &one, sizeof one));
    listener_.join();
    ::close(stop_listener_fd_);
    stop_listener_fd_ = -1;
}

void PgJobStore::CallOnWork() {
    std::lock_guard lock(on_work_mutex_);
    if (on_work_) {
        on_work_();
    }
}

void PgJobStore::Listen() {
    PgConnection listening;
    // Waits for the socket (or, with none, just the stop signal for `timeout_ms`): false when
    // asked to stop.
    auto wait = [this](int socket, int timeout_ms) {
        pollfd fds[2] = {{stop_listener_fd_, POLLIN, 0}, {socket, POLLIN, 0}};
        const int polled = ::poll(fds, socket >= 0 ? 2 : 1, timeout_ms);
        return !(polled > 0 && (fds[0].revents & POLLIN) != 0);
    };
    for (;;) {
        if (!listening.Ok()) {
            auto connected = PgConnection::Connect(url_);
            if (connected && connected->ExecScript("LISTEN " + std::string(kWorkChannel))) {
                listening = std::move(*connected);
                CallOnWork();  // what was notified while no one listened is not lost: look
            } else if (!wait(-1, 1000)) {
                return;  // the database is away: try again in a second, or stop
            } else {
                continue;
            }
        }
        if (!wait(listening.Socket(), -1)) {
            return;
        }
        auto received = listening.ConsumeNotifications();
        if (!received) {
            listening = {};  // lost: reconnect at the top of the loop
        } else if (*received > 0) {
            CallOnWork();
        }
    }
}

PgJobStore::Stats PgJobStore::stats() const { return queue_.stats(); }

int PgJobStore::BackendPid() {
    auto pid = queue_.SubmitAndWait<std::int64_t>(
        false, [this]() -> Result<std::int64_t> { return db_.BackendPid(); });
    return pid ? static_cast<int>(*pid) : 0;
}

std::uint64_t PgJobStore::RoundTrips() {
    auto count = queue_.SubmitAndWait<std::uint64_t>(
        false, [this]() -> Result<std::uint64_t> { return db_.round_trips(); });
    return count ? *count : 0;
}

// ---- The calls: each one a task on the store's thread.

void PgJobStore::EnqueueAsync(NewJob job, Callback<Enqueued> done) {
    queue_.Submit<Enqueued>(
        true, [this, job = std::move(job)] { return DoEnqueue(job); }, std::move(done));
}

Result<std::vector<Enqueued>> PgJobStore::CommitPollPage(PollPage page) {
    return queue_.SubmitAndWait<std::vector<Enqueued>>(true,
                                                       [&] { return DoCommitPollPage(page); });
}

Result<std::optional<PollCursor>> PgJobStore::ReadPollCursor(const std::string& poll) {
    return queue_.SubmitAndWait<std::optional<PollCursor>>(
        false, [&]() -> Result<std::optional<PollCursor>> {
            auto rows = db_.Exec("SELECT high_water, floor FROM poll_cursors WHERE poll = $1",
                                 PgParams().Add(poll));
            if (!rows) {
                return rows.error();
            }
            if (rows->Rows() == 0) {
                return std::optional<PollCursor>();
            }
            return std::optional<PollCursor>(
                PollCursor{FromMillis(rows->Int64(0, 0)), FromMillis(rows->Int64(0, 1))});
        });
}

void PgJobStore::LastEventNumberAsync(std::string subscription, Callback<std::int64_t> done) {
    queue_.Submit<std::int64_t>(
        false,
        [this, subscription = std::move(subscription)]() -> Result<std::int64_t> {
            auto rows =
                db_.Exec("SELECT last_event_number FROM subscriptions WHERE subscription = $1",
                         PgParams().Add(subscription));
            if (!rows) {
                return rows.error();
            }
            return rows->Rows() > 0 ? rows->Int64(0, 0) : 0;
        },
        std::move(done));
}

void PgJobStore::LeaseAsync(TimePoint now, std::chrono::milliseconds lease, std::size_t max,
                            Callback<std::vector<Job>> done) {
    queue_.Submit<std::vector<Job>>(
        true, [this, now, lease, max] { return DoLease(now, lease, max); }, std::move(done));
}

void PgJobStore::RequeueExpiredAsync(TimePoint now, Callback<std::size_t> done) {
    queue_.Submit<std::size_t>(
        true,
        [this, now]() -> Result<std::size_t> {
            auto updated = db_.Exec(
                "UPDATE jobs SET state = 'queued', next_attempt_at = $1, lease_until = NULL, "
                "updated_at = $1 WHERE state = 'running' AND lease_until < $1 "
                "RETURNING " +
                    std::string(kNotifyWork),
                PgParams().Add(Millis(now)));
            if (!updated) {
                return updated.error();
            }
            return static_cast<std::size_t>(updated->Affected());
        },
        std::move(done));
}

void PgJobStore::CompleteAsync(std::int64_t id, std::string outcome, std::optional<int> attempt,
                               Callback<void> done) {
    queue_.Submit<void>(
        true,
        [this, id, outcome = std::move(outcome), attempt] {
            return FinishRunning(id, "state = 'done', outcome = $3", PgParams().Add(outcome),
                                 attempt);
        },
        std::move(done));
}

void PgJobStore::ExtendLeaseAsync(std::int64_t id, int attempt, TimePoint until,
                                  Callback<void> done) {
    queue_.Submit<void>(
        true,
        [this, id, attempt, until]() -> Result<void> {
            auto updated = db_.Exec(
                "UPDATE jobs SET lease_until = greatest(lease_until, $3) "
                "WHERE id = $1 AND state = 'running' AND attempts = $2",
                PgParams().Add(id).Add(static_cast<std::int64_t>(attempt)).Add(Millis(until)));
            if (!updated) {
                return updated.error();
            }
            return updated->Affected() > 0 ? Result<void>() : MissingOrConflict(id);
        },
        std::move(done));
}

void PgJobStore::RetryLaterAsync(std::int64_t id, TimePoint next_attempt, std::string error,
                                 std::optional<int> attempt, Callback<void> done) {
    queue_.Submit<void>(
        true,
        [this, id, next_attempt, error = std::move(error), attempt] {
            return FinishRunning(id, "state = 'queued', next_attempt_at = $3, last_error = $4",
                                 PgParams().Add(Millis(next_attempt)).Add(error), attempt);
        },
        std::move(done));
}

void PgJobStore::DeadLetterAsync(std::int64_t id, std::string reason, std::string outcome,
                                 std::optional<int> attempt, Callback<void> done) {
    queue_.Submit<void>(
        true,
        [this, id, reason = std::move(reason), outcome = std::move(outcome), attempt] {
            return FinishRunning(id, "state = 'dead', last_error = $3, outcome = $4",
                                 PgParams().Add(reason).Add(outcome), attempt);
        },
        std::move(done));
}

Result<void> PgJobStore::Retry(std::int64_t id, TimePoint now) {
    return queue_.SubmitAndWait<void>(true, [&] { return DoRetry(id, now); });
}

Result<std::vector<std::int64_t>> PgJobStore::RetryJobs(const std::vector<std::int64_t>& ids,
                                                        TimePoint now, AdminNote note) {
    return queue_.SubmitAndWait<std::vector<std::int64_t>>(true, [&] {
        return detail::RetryEach(
            ids, note, [&](std::int64_t id) { return DoRetry(id, now); },
            [this](const AdminNote& note) { return DoInsertNote(note); });
    });
}

Result<std::size_t> PgJobStore::PurgeDone(TimePoint done_before, AdminNote note) {
    return queue_.SubmitAndWait<std::size_t>(true, [&]() -> Result<std::size_t> {
        const std::string done = "SELECT id FROM jobs WHERE state = 'done' AND updated_at < $1";
        const PgParams params = PgParams().Add(Millis(done_before));
        if (auto deleted = db_.Exec("DELETE FROM messages WHERE job_id IN (" + done + ")", params);
            !deleted) {
            return deleted.error();
        }
        auto deleted = db_.Exec("DELETE FROM jobs WHERE id IN (" + done + ")", params);
        if (!deleted) {
            return deleted.error();
        }
        const auto count = static_cast<std::size_t>(deleted->Affected());
        note.fields.emplace_back("count", std::to_string(count));
        if (auto noted = DoInsertNote(note); !noted) {
            return noted.error();
        }
        return count;
    });
}

Result<void> PgJobStore::AddAdminNote(AdminNote note) {
    return queue_.SubmitAndWait<void>(true, [&] { return DoInsertNote(note); });
}

Result<std::vector<AdminNote>> PgJobStore::PendingAdminNotes(std::size_t max) {
    // Every replica moves notes into the one trail: each claims those no live claim holds (its
    // own again, after a failed append), so that a note goes in once. A replica that dies
    // between its append and ForgetAdminNotes leaves its claim to expire: the note is then
    // written a second time, with the same note id, rather than never.
    return queue_.SubmitAndWait<std::vector<AdminNote>>(
        true, [&]() -> Result<std::vector<AdminNote>> {
            const std::int64_t now = Millis(options_.now());
            auto rows = db_.Exec(
                "UPDATE admin_notes SET claimed_by = $1, claimed_until = $2 WHERE id IN ("
                "SELECT id FROM admin_notes WHERE claimed_by IS NULL OR claimed_by = $1 OR "
                "claimed_until < $3 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED) "
                "RETURNING id, event, fields",
                PgParams().Add(claimant_).Add(now + kNoteClaimMillis).Add(now).Add(Limit(max)));
            if (!rows) {
                return rows.error();
            }
            std::vector<AdminNote> notes;
            for (int row = 0; row < rows->Rows(); ++row) {
                AdminNote note;
                note.id = rows->Int64(row, 0);
                note.event = rows->Text(row, 1);
                if (!detail::DecodeNoteFields(rows->Text(row, 2), note)) {
                    return Error::kStoreFailed;
                }
                notes.push_back(std::move(note));
            }
            // RETURNING keeps no order: the trail gets them oldest first.
            std::sort(notes.begin(), notes.end(),
                      [](const AdminNote& a, const AdminNote& b) { return a.id < b.id; });
            return notes;
        });
}

Result<void> PgJobStore::ForgetAdminNotes(std::int64_t up_to_id) {
    return queue_.SubmitAndWait<void>(true, [&]() -> Result<void> {
        // Only this store's: older notes of another replica's claim are still to be written.
        auto deleted = db_.Exec("DELETE FROM admin_notes WHERE id <= $1 AND claimed_by = $2",
                                PgParams().Add(up_to_id).Add(claimant_));
        if (!deleted) {
            return deleted.error();
        }
        return {};
    });
}

Result<Job> PgJobStore::Get(std::int64_t id) {
    return queue_.SubmitAndWait<Job>(false, [&]() -> Result<Job> {
        auto jobs = QueryJobs("SELECT " + std::string(kJobColumns) + " FROM jobs WHERE id = $1",
                              PgParams().Add(id));
        if (!jobs) {
            return jobs.error();
        }
        if (jobs->empty()) {
            return Error::kNotFound;
        }
        return std::move(jobs->front());
    });
}

Result<std::vector<Job>> PgJobStore::List(const JobFilter& filter) {
    return queue_.SubmitAndWait<std::vector<Job>>(false, [&] {
        // An unset filter is sent as NULL and matches everything.
        PgParams params;
        filter.state ? params.Add(ToString(*filter.state)) : params.AddNull();
        params.Add(filter.changed_since ? std::optional<std::int64_t>(Millis(*filter.changed_since))
                                        : std::nullopt);
        filter.encounter.empty() ? params.AddNull() : params.Add(filter.encounter);
        params.Add(Limit(filter.limit));
        return QueryJobs("SELECT " + std::string(kJobColumns) +
                             " FROM jobs WHERE ($1::text IS NULL OR state = $1) "
                             "AND ($2::bigint IS NULL OR updated_at >= $2) "
                             "AND ($3::text IS NULL OR encounter = $3) ORDER BY id " +
                             (filter.newest_first ? "DESC " : "") + "LIMIT $4",
                         params);
    });
}

Result<std::size_t> PgJobStore::CountByState(JobState state) {
    return queue_.SubmitAndWait<std::size_t>(false, [&]() -> Result<std::size_t> {
        auto rows =
            db_.Exec("SELECT count(*) FROM jobs WHERE state = $1", PgParams().Add(ToString(state)));
        if (!rows) {
            return rows.error();
        }
        return static_cast<std::size_t>(rows->Int64(0, 0));
    });
}

Result<std::optional<TimePoint>> PgJobStore::OldestWaiting() {
    return queue_.SubmitAndWait<std::optional<TimePoint>>(
        false, [&]() -> Result<std::optional<TimePoint>> {
            auto rows =
                db_.Exec("SELECT min(created_at) FROM jobs WHERE state IN ('queued', 'running')");
            if (!rows) {
                return rows.error();
            }
            const auto millis = rows->OptionalInt64(0, 0);  // NULL: none
            if (!millis) {
                return std::optional<TimePoint>();
            }
            return std::optional<TimePoint>(FromMillis(*millis));
        });
}

// ---- Task bodies, on the store's thread.

namespace {

// A new job with its trigger's note, as the `inserted` and `noted` parts of a WITH: the job
// goes in when `only_if` holds and its trigger is new (ON CONFLICT DO NOTHING: another store
// inserting the same trigger at this moment makes the statement wait for its commit, then
// insert nothing); its note goes in with it (one round trip, not two), the fields as
// EncodeNoteFields writes them (compact JSON) with the new job's id appended in SQL as
// NoteOfNewJob appends it. Parameters $1 to $7 as NewJobParams adds them.
std::string InsertedJobAndNote(std::string_view only_if) {
    return "inserted AS (INSERT INTO jobs (trigger_key, encounter, kind, payload, state, "
           "attempts, created_at, updated_at, next_attempt_at) "
           "SELECT $1::text, $2::text, $3::text, $4::text, 'queued', 0, $5::bigint, $5::bigint, "
           "$5::bigint WHERE " +
           std::string(only_if) +
           " ON CONFLICT (trigger_key) DO NOTHING RETURNING id), "
           "noted AS (INSERT INTO admin_notes (event, fields) SELECT $6, left($7, -1) || "
           "CASE WHEN $7 = '{}' THEN '' ELSE ',' END || '\"job\":\"' || id || '\"}' "
           "FROM inserted WHERE $6::text IS NOT NULL)";
}

// $1 to $7 of InsertedJobAndNote: the job, when it is made, and its note (none: NULL).
PgParams NewJobParams(const NewJob& job, std::int64_t now) {
    PgParams params;
    params.Add(job.trigger_key).Add(job.encounter).Add(job.kind).Add(job.payload).Add(now);
    if (job.note) {
        params.Add(job.note->event).Add(detail::EncodeNoteFields(*job.note));
    } else {
        params.AddNull().Add(std::string_view("{}"));
    }
    return params;
}

// The answer to a message whose Bundle id the store knows already.
Result<Enqueued> KnownMessage(const MessageRecord& message, const std::string& header_id,
                              std::string response, std::int64_t job_id) {
    if (header_id != message.header_id) {
        // A Bundle id reused for another message: answering with the first message's response
        // would acknowledge something never recorded.
        return Error::kConflict;
    }
    return Enqueued{job_id, false, std::move(response)};
}

}  // namespace

// A message is journaled in one statement, one round trip: the look-up of its Bundle id, the
// job with its note, and the message row. Each part runs only if the one before found nothing
// (a re-send inserts nothing). Nothing: a case only the step-by-step path settles (another
// store inserted the same trigger or message at this moment, which this statement's snapshot
// cannot see); this statement then wrote nothing, or only what the caller's savepoint still
// holds and the step-by-step path finds again.
Result<std::optional<Enqueued>> PgJobStore::EnqueueMessageAtOnce(const NewJob& job) {
    PgParams params = NewJobParams(job, Millis(options_.now()));
    params.Add(job.message->bundle_id).Add(job.message->header_id).Add(job.message->response);
    auto row = db_.Exec(
        "WITH known AS (SELECT header_id, response, job_id FROM messages WHERE bundle_id = $8), " +
            InsertedJobAndNote("NOT EXISTS (SELECT 1 FROM known)") +
            ", job AS (SELECT id FROM inserted UNION ALL SELECT id FROM jobs WHERE trigger_key = "
            "$1 AND NOT EXISTS (SELECT 1 FROM known) AND NOT EXISTS (SELECT 1 FROM inserted)), "
            "recorded AS (INSERT INTO messages (bundle_id, header_id, response, job_id) "
            "SELECT $8, $9::text, $10::text, id FROM job ON CONFLICT (bundle_id) DO NOTHING "
            "RETURNING job_id) "
            "SELECT known.header_id, known.response, known.job_id, (SELECT id FROM inserted), "
            "(SELECT job_id FROM recorded), (SELECT " +
            std::string(kNotifyWork) +
            " FROM inserted) FROM (SELECT 1) AS one LEFT JOIN known ON true",
        params);
    if (!row) {
        return row.error();
    }
    if (!row->IsNull(0, 0)) {
        auto known = KnownMessage(*job.message, row->Text(0, 0), row->Text(0, 1), row->Int64(0, 2));
        if (!known) {
            return known.error();
        }
        return std::optional<Enqueued>(std::move(*known));
    }
    if (row->IsNull(0, 4)) {
        return std::optional<Enqueued>();
    }
    Enqueued enqueued;
    enqueued.job_id = row->Int64(0, 4);
    enqueued.created = !row->IsNull(0, 3);
    return std::optional<Enqueued>(enqueued);
}

Result<Enqueued> PgJobStore::DoEnqueue(const NewJob& job) {
    if (job.message && !job.subscription_event) {
        auto at_once = EnqueueMessageAtOnce(job);
        if (!at_once) {
            return at_once.error();
        }
        if (*at_once) {
            return **at_once;
        }
    }
    auto find_message = [&]() -> Result<std::optional<Enqueued>> {
        auto rows =
            db_.Exec("SELECT header_id, response, job_id FROM messages WHERE bundle_id = $1",
                     PgParams().Add(job.message->bundle_id));
        if (!rows) {
            return rows.error();
        }
        if (rows->Rows() == 0) {
            return std::optional<Enqueued>();
        }
        auto known =
            KnownMessage(*job.message, rows->Text(0, 0), rows->Text(0, 1), rows->Int64(0, 2));
        if (!known) {
            return known.error();
        }
        return std::optional<Enqueued>(std::move(*known));
    };
    if (job.message) {
        auto known = find_message();
        if (!known) {
            return known.error();
        }
        if (*known) {
            return **known;
        }
    }

    // A trigger another store inserted at this moment is found by the SELECT after the insert
    // (a new snapshot).
    Enqueued enqueued;
    auto inserted = db_.Exec("WITH " + InsertedJobAndNote("true") + " SELECT id, " +
                                 std::string(kNotifyWork) + " FROM inserted",
                             NewJobParams(job, Millis(options_.now())));
    if (!inserted) {
        return inserted.error();
    }
    if (inserted->Rows() > 0) {
        enqueued.job_id = inserted->Int64(0, 0);
        enqueued.created = true;
    } else {
        auto found =
            db_.Exec("SELECT id FROM jobs WHERE trigger_key = $1", PgParams().Add(job.trigger_key));
        if (!found) {
            return found.error();
        }
        if (found->Rows() == 0) {
            return Error::kStoreFailed;  // purged between the two statements: try again
        }
        enqueued.job_id = found->Int64(0, 0);
    }

    if (job.message) {
        // Also for a known trigger: a later re-send of this message is then recognised by its
        // Bundle id without depending on how the trigger key was derived.
        auto recorded = db_.Exec(
            "INSERT INTO messages (bundle_id, header_id, response, job_id) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT (bundle_id) DO NOTHING",
            PgParams()
                .Add(job.message->bundle_id)
                .Add(job.message->header_id)
                .Add(job.message->response)
                .Add(enqueued.job_id));
        if (!recorded) {
            return recorded.error();
        }
        if (recorded->Affected() == 0) {
            // Another store recorded this message meanwhile: its answer is the answer.
            auto known = find_message();
            if (!known) {
                return known.error();
            }
            if (!*known) {
                return Error::kStoreFailed;
            }
            return **known;
        }
    }
    if (job.subscription_event) {
        // GREATEST: notifications may arrive out of order, and a late one must not move the
        // number back and make a gap look like it was filled.
        auto upserted = db_.Exec(
            "INSERT INTO subscriptions (subscription, last_event_number) VALUES ($1, $2) "
            "ON CONFLICT (subscription) DO UPDATE SET last_event_number = "
            "GREATEST(subscriptions.last_event_number, EXCLUDED.last_event_number)",
            PgParams()
                .Add(job.subscription_event->subscription)
                .Add(job.subscription_event->event_number));
        if (!upserted) {
            return upserted.error();
        }
    }
    return enqueued;
}

Result<std::vector<Enqueued>> PgJobStore::DoCommitPollPage(PollPage& page) {
    auto out = detail::EnqueuePage(page, [this](const NewJob& job) { return DoEnqueue(job); });
    if (!out) {
        return out;
    }
    auto stored = db_.Exec(
        "INSERT INTO poll_cursors (poll, high_water, floor, updated_at) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (poll) DO UPDATE SET "
        "high_water = GREATEST(poll_cursors.high_water, EXCLUDED.high_water), "
        "floor = EXCLUDED.floor, updated_at = EXCLUDED.updated_at",
        PgParams()
            .Add(page.poll)
            .Add(Millis(page.cursor.high_water))
            .Add(Millis(page.cursor.floor))
            .Add(Millis(options_.now())));
    if (!stored) {
        return stored.error();
    }
    return out;
}

Result<std::vector<Job>> PgJobStore::DoLease(TimePoint now, std::chrono::milliseconds lease,
                                             std::size_t max) {
    if (max == 0) {
        return std::vector<Job>();
    }
    // 1. The encounters to claim: due queued jobs whose encounter has no live running job, the
    //    longest due job of each (one per encounter per call), longest due first, and of those
    //    only encounters whose lock this transaction gets. The lock is tried on the sorted rows
    //    one by one (OFFSET 0 keeps the sort below the filter), so it stops at `max` and never
    //    locks encounters it will not claim; a lock held by another store skips the encounter.
    //    Advisory locks are the database's, not the schema's: the key names the schema too, so
    //    that deployments in two schemas of one database never hold up each other's claims.
    auto chosen = db_.Exec(
        "SELECT c.id FROM (SELECT id, encounter, next_attempt_at FROM ("
        "SELECT DISTINCT ON (q.encounter) q.id, q.encounter, q.next_attempt_at FROM jobs AS q "
        "WHERE q.state = 'queued' AND q.next_attempt_at <= $1 AND NOT EXISTS ("
        "SELECT 1 FROM jobs AS r WHERE r.state = 'running' AND r.encounter = q.encounter "
        "AND r.lease_until >= $1) "
        "ORDER BY q.encounter, q.next_attempt_at, q.id) AS d "
        "ORDER BY next_attempt_at, id OFFSET 0) AS c "
        "WHERE pg_try_advisory_xact_lock(hashtextextended(current_schema() || '/' || "
        "c.encounter, 0)) LIMIT $2",
        PgParams().Add(Millis(now)).Add(Limit(max)), PgConnection::Plan::kEachRun);
    if (!chosen) {
        return chosen.error();
    }
    if (chosen->Rows() == 0) {
        return std::vector<Job>();
    }
    std::string ids = "{";
    for (int row = 0; row < chosen->Rows(); ++row) {
        ids += (row > 0 ? "," : "") + chosen->Text(row, 0);
    }
    ids += "}";
    // 2. A new statement, so a new snapshot, taken with the locks held: every lease of these
    //    encounters committed by another store before is visible here, and the check is made
    //    again; the rows are claimed with SKIP LOCKED so that the lease never waits for them.
    auto leased = QueryJobs(
        "UPDATE jobs SET state = 'running', lease_until = $2, attempts = attempts + 1, "
        "updated_at = $3 WHERE id IN (SELECT id FROM jobs WHERE id = ANY($1::bigint[]) "
        "AND state = 'queued' AND next_attempt_at <= $3 FOR UPDATE SKIP LOCKED) "
        "AND NOT EXISTS (SELECT 1 FROM jobs AS r WHERE r.state = 'running' "
        "AND r.encounter = jobs.encounter AND r.lease_until >= $3) RETURNING " +
            std::string(kJobColumns),
        PgParams().Add(ids).Add(Millis(now + lease)).Add(Millis(now)),
        PgConnection::Plan::kEachRun);
    if (!leased) {
        return leased.error();
    }
    // RETURNING has no order of its own: longest due first, as the contract promises.
    std::sort(leased->begin(), leased->end(), [](const Job& a, const Job& b) {
        return std::pair(a.next_attempt_at, a.id) < std::pair(b.next_attempt_at, b.id);
    });
    return leased;
}

Result<void> PgJobStore::FinishRunning(std::int64_t id, const std::string& set, PgParams params,
                                       std::optional<int> attempt) {
    // $1 the id, $2 the attempt (NULL: not fenced), $3.. the caller's; the last, updated_at.
    PgParams all;
    all.Add(id).Add(attempt ? std::optional<std::int64_t>(*attempt) : std::nullopt);
    all.Append(params);
    const int updated_at = all.size() + 1;
    all.Add(Millis(options_.now()));
    auto updated = db_.Exec("UPDATE jobs SET " + set + ", lease_until = NULL, updated_at = $" +
                                std::to_string(updated_at) +
                                " WHERE id = $1 AND state = 'running' "
                                "AND ($2::integer IS NULL OR attempts = $2) "
                                // The encounter is free: its next job may be leased.
                                "RETURNING " +
                                std::string(kNotifyWork),
                            all);
    if (!updated) {
        return updated.error();
    }
    return updated->Affected() > 0 ? Result<void>() : MissingOrConflict(id);
}

Result<void> PgJobStore::DoRetry(std::int64_t id, TimePoint now) {
    auto updated = db_.Exec(
        "UPDATE jobs SET state = 'queued', attempts = 0, next_attempt_at = $2, "
        "lease_until = NULL, updated_at = $2 WHERE id = $1 AND state IN ('done', 'dead') "
        "RETURNING " +
            std::string(kNotifyWork),
        PgParams().Add(id).Add(Millis(now)));
    if (!updated) {
        return updated.error();
    }
    return updated->Affected() > 0 ? Result<void>() : MissingOrConflict(id);
}

Result<void> PgJobStore::MissingOrConflict(std::int64_t id) {
    auto rows = db_.Exec("SELECT 1 FROM jobs WHERE id = $1", PgParams().Add(id));
    if (!rows) {
        return rows.error();
    }
    return rows->Rows() > 0 ? Error::kConflict : Error::kNotFound;
}

Result<void> PgJobStore::DoInsertNote(const AdminNote& note) {
    auto inserted = db_.Exec("INSERT INTO admin_notes (event, fields) VALUES ($1, $2)",
                             PgParams().Add(note.event).Add(detail::EncodeNoteFields(note)));
    if (!inserted) {
        return inserted.error();
    }
    return {};
}

Result<std::vector<Job>> PgJobStore::QueryJobs(std::string_view sql, const PgParams& params,
                                               PgConnection::Plan plan) {
    auto rows = db_.Exec(sql, params, plan);
    if (!rows) {
        return rows.error();
    }
    return ReadJobs(*rows);
}

}  // namespace microcare::adapter
