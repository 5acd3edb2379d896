#include "adapter/store/sqlite_backup.hpp"

#include <sqlite3.h>

#include <chrono>
#include <memory>
#include <thread>

#include "adapter/file_copy.hpp"
#include "adapter/store/sqlite_job_store.hpp"
#include "adapter/store/sqlite_statement.hpp"

namespace microcare::adapter {
namespace {

using detail::SqliteStatement;

struct Closer {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Connection = std::unique_ptr<sqlite3, Closer>;

Result<Connection> OpenDatabase(const std::string& path, int flags) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
    Connection db(raw);  // a failed open still returns a handle that must be closed
    if (rc != SQLITE_OK) {
        return (rc & 0xff) == SQLITE_CANTOPEN ? Error::kNotFound : Error::kStoreFailed;
    }
    sqlite3_extended_result_codes(db.get(), 1);
    return db;
}

// The first column of the first row of `sql`, as text.
Result<std::string> QueryText(sqlite3* db, const char* sql) {
    auto statement = SqliteStatement::Prepare(db, sql);
    if (!statement) return statement.error();
    auto row = statement->Next();
    if (!row) return row.error();
    if (!*row) return Error::kStoreFailed;
    return statement->Text(0);
}

}  // namespace

Result<void> BackupSqliteDatabase(const std::string& source, const std::string& destination) {
    // Read-write without CREATE: a reader of a WAL database may have to create its shared-memory
    // file, and a mistyped path must not become an empty database. Nothing is written to it.
    auto from = OpenDatabase(source, SQLITE_OPEN_READWRITE);
    if (!from) return from.error();
    // The service's writes hold the lock only for a commit's length; wait those out.
    sqlite3_busy_timeout(from->get(), 10000);
    auto to = OpenDatabase(destination, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (!to) return to.error();

    sqlite3_backup* backup = sqlite3_backup_init(to->get(), "main", from->get(), "main");
    if (backup == nullptr) return Error::kStoreFailed;
    // All pages in one step: one read transaction, so a commit of the service in the meantime
    // neither restarts the copy nor gets into it half-way. BUSY (a writer checkpointing at
    // that very moment) is waited out a few times, then reported.
    int rc = SQLITE_OK;
    for (int attempt = 0; attempt < 50; ++attempt) {
        rc = sqlite3_backup_step(backup, -1);
        if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const int finished = sqlite3_backup_finish(backup);
    if (rc != SQLITE_DONE || finished != SQLITE_OK) return Error::kStoreFailed;

    // The copy carries the source's WAL flag; as a plain file it can be read, hashed and checked
    // without a -wal or -shm file appearing beside it.
    auto mode = QueryText(to->get(), "PRAGMA journal_mode = DELETE");
    if (!mode) return mode.error();
    if (*mode != "delete") return Error::kStoreFailed;
    to.value().reset();
    return SyncFile(destination);
}

std::string ProblemWithStoreCopy(const std::string& path) {
    auto db = OpenDatabase(path, SQLITE_OPEN_READONLY);
    if (!db) return "cannot be opened as a SQLite database";
    auto check = QueryText(db->get(), "PRAGMA quick_check");
    if (!check) return "is not a SQLite database (or is damaged)";
    if (*check != "ok") return "is damaged (SQLite quick_check: " + *check + ")";
    db->reset();
    // The schema version, as a read of the store checks it: older is migrated, newer refused.
    StoreOptions options;
    options.read_only = true;
    auto store = SqliteJobStore::Open(path, options);
    if (!store) return "is not a MicroCare store this version can read (a newer release's?)";
    (*store)->Close();
    return {};
}

}  // namespace microcare::adapter
