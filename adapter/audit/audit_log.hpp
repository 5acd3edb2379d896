#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "adapter/audit/audit_file.hpp"
#include "adapter/audit/audit_key.hpp"
#include "adapter/audit/audit_settings.hpp"
#include "adapter/audit/audit_table.hpp"
#include "adapter/batch_company.hpp"
#include "adapter/error.hpp"

namespace microcare::adapter {

struct AuditCheckpoint;

// The audit trail: one JSON object per line for every decision and every write. Each record is
// sealed, over its exact bytes, with an HMAC-SHA-256 under the configured key (plain SHA-256
// without one) and holds the seal of the record before it, so that an edited, removed,
// reordered or forged record breaks the chain at that point; a checkpoint of the head, kept
// apart, shows records cut from the end. Records carry resource ids, rule ids and outcomes;
// never names, birth dates, free text or bodies. deploy/OPERATIONS.md tells how to verify,
// rotate, keep, export and recover it.
class AuditLog {
public:
    struct Field {
        Field(std::string_view k, std::string_view v) : key(k), value(v) {}
        std::string_view key;
        std::string_view value;
    };

    struct Options {
        AuditFileOpener open_file;                                     // default: OpenAuditFile
        std::function<std::chrono::system_clock::time_point()> clock;  // default: the system's
        // Set: the trail is kept in this table (a PostgreSQL store's, which replicas share)
        // instead of files; settings.path, the rotation and the retention do not apply, and
        // each append moves the table's checkpoint with it.
        std::shared_ptr<AuditTable> table;
    };

    // Opens (or creates) the trail and continues its chain. A torn last line (a crash while it
    // was written) is cut off and a record says so; damage before it, or a trail that ends
    // before its checkpoint, refuses the open: the trail is not silently extended. Why, with the
    // file, the line and the command that inspects it, is logged and put in `problem`.
    static Result<std::unique_ptr<AuditLog>> Open(const AuditSettings& settings,
                                                  Options options = {},
                                                  std::string* problem = nullptr);
    // An unkeyed trail at `path` with the default settings.
    static Result<std::unique_ptr<AuditLog>> Open(const std::string& path);

    ~AuditLog();
    AuditLog(const AuditLog&) = delete;
    AuditLog& operator=(const AuditLog&) = delete;

    // Appends one record and makes it durable (fdatasync) before returning. Values are any
    // bytes: what is not UTF-8 is replaced, never copied. On an error (a full disk: ENOSPC)
    // nothing of the record stays in the file; the next Append tries again, first recording
    // how many appends failed. Keys must be unique and not seq, ts, event, prev or hash.
    // Thread-safe; not from AppendAsync's callbacks (they run on the thread it waits for).
    Result<void> Append(std::string_view event, std::initializer_list<Field> fields);
    Result<void> Append(std::string_view event, std::span<const Field> fields);

    // A record with its values copied: what AppendAsync queues.
    struct Record {
        std::string event;
        std::vector<std::pair<std::string, std::string>> fields;
    };
    static Record MakeRecord(std::string_view event, std::span<const Field> fields);
    static Record MakeRecord(std::string_view event, std::initializer_list<Field> fields) {
        return MakeRecord(event, std::span<const Field>(fields.begin(), fields.size()));
    }
    using Done = std::function<void(Result<void>)>;
    // The same as Append without blocking the caller: the record goes to the trail's writer
    // thread, which writes every record queued while it waited for one fdatasync together
    // with the next (group commit), so that many callers share one sync. `done` runs on that
    // thread once the record is durable, or with the error that refused it; it must not block
    // or append synchronously. Records of one caller are written in the order queued.
    void AppendAsync(Record record, Done done);

    // After failed appends, tries to write again (the record saying the trail resumed), so
    // that the trail heals without waiting for the next event; nothing when it is healthy.
    // What /readyz calls before it reports the trail's health.
    Result<void> Resume();

    // Writes the last checkpoint; later Appends fail. The destructor does it too.
    Result<void> Close();

    // The last record.
    struct Head {
        std::uint64_t records = 0;
        std::string last_hash;
        std::string file;
    };
    Head head() const;

    // For /readyz and the metrics: whether the last Append succeeded, and the failures so far.
    struct Health {
        bool writable = true;
        std::uint64_t failed_appends = 0;  // since the process started
        boost::system::error_code last_error;
    };
    Health health() const;

private:
    using Pending = Record;
    struct Queued {
        Record record;
        Done done;
    };

    AuditLog(AuditSettings settings, ChainKey key, Options options, std::optional<TrailLock> lock);

    Result<void> Recover(std::string& problem);
    // Recover for a trail in a table: its head held against its checkpoint and its last record.
    Result<void> RecoverTable(std::string& problem);
    // The records `all` sealed after `seq` and `prev` at time `ts`.
    Result<std::vector<std::string>> Seal(const std::vector<Pending>& all, std::uint64_t seq,
                                          std::string prev, const std::string& ts) const;
    // WriteLocked's end for a trail in a table.
    Result<void> WriteTableLocked(std::vector<Pending> all, std::size_t count);
    // What is to be written before `records`: the trail's own records, and after failed
    // appends the one saying it resumed.
    std::vector<Pending> Gathered(std::vector<Pending> records) const;
    // The trail's name in the log: its file's, or "database".
    std::string Where() const;
    // The checkpoint of the head `records`, `last_hash`, written at `time`.
    AuditCheckpoint CheckpointAt(std::uint64_t records, std::string last_hash,
                                 std::string time) const;
    // The first record of a new trail.
    Pending StartRecord() const;
    // After `records` were written: the new head, and the failures over.
    void Written(std::size_t records, std::uint64_t next_seq, std::string last_hash);
    Result<void> OpenActiveFile();
    Result<void> WriteLocked(std::vector<Pending> records);
    void NoteFailure(const boost::system::error_code& error, std::size_t records);
    // The writer thread of AppendAsync: takes the whole queue, writes it with one sync.
    void WriteQueued();
    void StopWriter();
    Result<void> CheckpointLocked();
    void MaybeCheckpointLocked();
    void MaybeRotateLocked();
    void ApplyRetentionLocked();
    std::string Now() const;
    // A record's ts as a time; nothing when it is not one.
    static std::optional<std::chrono::system_clock::time_point> ParseTs(std::string_view ts);

    const AuditSettings settings_;
    const ChainKey key_;
    Options options_;
    std::optional<TrailLock> lock_;  // a trail in files only

    mutable std::mutex mutex_;
    std::unique_ptr<AuditFile> file_;  // null: the active file is to be (re)opened
    std::uint64_t file_first_seq_ = 0;
    std::chrono::system_clock::time_point file_started_;  // the active file's first record
    std::uint64_t good_size_ = 0;  // where the last whole record of the active file ends
    bool dirty_ = false;           // bytes of a failed write may lie beyond good_size_
    std::uint64_t next_seq_ = 1;
    std::string last_hash_;
    std::vector<Pending> pending_;  // records of the trail's own to write before the next one
    std::uint64_t failures_in_a_row_ = 0;
    std::string failing_since_;
    std::uint64_t failed_appends_ = 0;
    boost::system::error_code last_error_;
    std::uint64_t since_checkpoint_ = 0;
    std::chrono::system_clock::time_point last_checkpoint_;
    bool closed_ = false;

    // AppendAsync's queue and writer thread (started by the first AppendAsync).
    std::mutex queue_mutex_;
    std::condition_variable queue_changed_;
    std::deque<Queued> queue_;
    BatchCompany company_{64};  // how many a record found alone waits for (see WriteQueued)
    std::thread writer_;
    bool stopping_ = false;
};

}  // namespace microcare::adapter
