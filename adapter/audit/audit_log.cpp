#include "adapter/audit/audit_log.hpp"

#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>

#include "adapter/audit/audit_chain.hpp"
#include "adapter/audit/audit_checkpoint.hpp"
#include "adapter/audit/audit_file_set.hpp"
#include "adapter/log.hpp"
#include "adapter/thread_name.hpp"
#include "fhir/date_time.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

// Group commit of the trail (see WriteQueued): a record found alone waits this long for
// company at the most (BatchCompany says when it has enough). The store waits as long
// (StoreOptions).
constexpr std::chrono::microseconds kCompanyWait{200};

// A sealed line (no newline), or empty when OpenSSL could not seal it.
std::string SealRecord(std::uint64_t seq, const std::string& ts, std::string_view event,
                       const std::vector<std::pair<std::string, std::string>>& fields,
                       const std::string& prev, const ChainKey& key) {
    // The writer escapes every value; bytes that are not UTF-8 become U+FFFD, so a record is
    // always valid JSON whatever the caller passed.
    fhir::JsonWriter w;
    w.StartObject();
    w.Key("seq");
    w.Int(static_cast<long long>(seq));
    w.Field("ts", ts);
    w.Field("event", event);
    for (const auto& [name, value] : fields) w.Field(name, value);
    w.Field("prev", prev);
    w.EndObject();
    return SealLine(w.View(), key);
}

// The seal of a sealed line: the 64 digits before the closing `"}`.
std::string SealOf(std::string_view line) { return std::string(line.substr(line.size() - 66, 64)); }

// Where the trail is, for the log.
constexpr std::string_view kInTable = "database";

bool FieldsAllowed(const std::vector<std::pair<std::string, std::string>>& fields) {
    static constexpr std::string_view kReserved[] = {"seq", "ts", "event", "prev", "hash"};
    for (std::size_t i = 0; i < fields.size(); ++i) {
        const std::string_view key = fields[i].first;
        if (key.empty()) return false;
        for (std::string_view reserved : kReserved) {
            if (key == reserved) return false;
        }
        for (std::size_t j = 0; j < i; ++j) {
            if (fields[j].first == key) return false;
        }
    }
    return true;
}

// The first record of a trail file, read from its start.
std::optional<AuditRecord> FirstRecordOf(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::string line;
    std::string why;
    if (!std::getline(in, line)) return std::nullopt;
    return ParseRecordLine(line, why);
}

}  // namespace

AuditLog::AuditLog(AuditSettings settings, ChainKey key, Options options,
                   std::optional<TrailLock> lock)
    : settings_(std::move(settings)),
      key_(std::move(key)),
      options_(std::move(options)),
      lock_(std::move(lock)),
      last_hash_(kGenesisHash) {}

AuditLog::~AuditLog() { (void)Close(); }

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path) {
    AuditSettings settings;
    settings.path = path;
    return Open(settings);
}

Result<void> AuditLog::Append(std::string_view event, std::initializer_list<Field> fields) {
    return Append(event, std::span<const Field>(fields.begin(), fields.size()));
}

Result<void> AuditLog::Resume() {
    std::lock_guard lock(mutex_);
    if (failures_in_a_row_ == 0) return {};
    return WriteLocked({});
}

AuditLog::Record AuditLog::MakeRecord(std::string_view event, std::span<const Field> fields) {
    Record record{std::string(event), {}};
    record.fields.reserve(fields.size());
    for (const Field& field : fields) record.fields.emplace_back(field.key, field.value);
    return record;
}

Result<void> AuditLog::Append(std::string_view event, std::span<const Field> fields) {
    // Through the writer's queue, so that records keep the order they were made in whichever
    // way they came (a service-stop after the last job's records).
    std::promise<Result<void>> promise;
    auto future = promise.get_future();
    AppendAsync(MakeRecord(event, fields),
                [&promise](Result<void> written) { promise.set_value(std::move(written)); });
    return future.get();
}

void AuditLog::AppendAsync(Record record, Done done) {
    if (!FieldsAllowed(record.fields)) {
        done(make_error_code(boost::system::errc::invalid_argument));
        return;
    }
    {
        std::lock_guard queue(queue_mutex_);
        if (!stopping_) {
            queue_.push_back(Queued{std::move(record), std::move(done)});
            if (!writer_.joinable())
                writer_ = std::thread([this] {
                    NameThisThread("microcare-audit");
                    WriteQueued();
                });
            queue_changed_.notify_one();
            return;
        }
    }
    done(Error::kShuttingDown);
}

void AuditLog::WriteQueued() {
    std::unique_lock queue(queue_mutex_);
    for (;;) {
        queue_changed_.wait(queue, [this] { return !queue_.empty() || stopping_; });
        if (queue_.empty()) return;
        if (!company_.Enough(queue_.size()) && !stopping_) {
            // Each write costs a sync however many records it carries, and records come a few
            // at a time from many workers: a short wait lets those arriving now share it.
            queue_changed_.wait_for(queue, kCompanyWait,
                                    [this] { return company_.Enough(queue_.size()) || stopping_; });
        }
        std::deque<Queued> batch;
        batch.swap(queue_);
        company_.Took(batch.size());
        queue.unlock();
        std::vector<Pending> records;
        records.reserve(batch.size());
        for (Queued& queued : batch) records.push_back(std::move(queued.record));
        Result<void> written;
        {
            std::lock_guard lock(mutex_);
            written = WriteLocked(std::move(records));
            if (written) {
                MaybeCheckpointLocked();
                MaybeRotateLocked();
            }
        }
        for (Queued& queued : batch) queued.done(written);
        queue.lock();
    }
}

void AuditLog::StopWriter() {
    {
        std::lock_guard queue(queue_mutex_);
        stopping_ = true;
        queue_changed_.notify_one();
    }
    // What was queued is still written: the thread ends once the queue is empty.
    if (writer_.joinable()) writer_.join();
}

Result<void> AuditLog::Close() {
    StopWriter();
    std::lock_guard lock(mutex_);
    if (closed_) return {};
    auto checkpoint = CheckpointLocked();
    closed_ = true;
    file_.reset();
    return checkpoint;
}

AuditLog::Head AuditLog::head() const {
    std::lock_guard lock(mutex_);
    return Head{next_seq_ - 1, last_hash_, Where()};
}

AuditLog::Health AuditLog::health() const {
    std::lock_guard lock(mutex_);
    return Health{failures_in_a_row_ == 0, failed_appends_, last_error_};
}

std::string AuditLog::Now() const {
    return fhir::FormatInstant(std::chrono::floor<std::chrono::milliseconds>(options_.clock()), 0);
}

Result<void> AuditLog::OpenActiveFile() {
    auto file = options_.open_file(settings_.path);
    if (!file) return file.error();
    auto size = (*file)->Size();
    if (!size) return size.error();
    file_ = std::move(*file);
    good_size_ = *size;
    dirty_ = false;
    if (good_size_ == 0) {
        file_first_seq_ = next_seq_;
        file_started_ = options_.clock();
        (void)SyncDirectoryOf(settings_.path);  // a created file must outlive a crash
    }
    return {};
}

void AuditLog::NoteFailure(const boost::system::error_code& error, std::size_t records) {
    // Every record refused counts (a batch of AppendAsync fails as a whole); Resume's attempt
    // counts as one.
    const std::uint64_t before = failures_in_a_row_;
    const std::uint64_t failed = records == 0 ? 1 : records;
    failures_in_a_row_ += failed;
    failed_appends_ += failed;
    last_error_ = error;
    if (before == 0) failing_since_ = Now();
    if (std::bit_width(before) != std::bit_width(failures_in_a_row_)) {
        Log::Error(
            "cannot write the audit trail; the record is refused and the next one tries "
            "again",
            {{"file", Where()},
             {"error", error.message()},
             {"failuresInARow", std::to_string(failures_in_a_row_)}});
    }
}

std::string AuditLog::Where() const {
    return options_.table ? std::string(kInTable) : FileName(settings_.path);
}

AuditCheckpoint AuditLog::CheckpointAt(std::uint64_t records, std::string last_hash,
                                       std::string time) const {
    AuditCheckpoint checkpoint;
    checkpoint.records = records;
    checkpoint.last_hash = std::move(last_hash);
    checkpoint.file = Where();
    checkpoint.time = std::move(time);
    checkpoint.key_id = key_.id();
    return checkpoint;
}

AuditLog::Pending AuditLog::StartRecord() const {
    return Pending{std::string(kEventStart),
                   {{"format", std::string(kFormat)}, {"key", key_.id()}}};
}

std::vector<AuditLog::Pending> AuditLog::Gathered(std::vector<Pending> records) const {
    std::vector<Pending> all = pending_;
    if (failures_in_a_row_ > 0) {
        all.push_back(Pending{std::string(kEventResumed),
                              {{"failedAppends", std::to_string(failures_in_a_row_)},
                               {"since", failing_since_},
                               {"error", last_error_.message()}}});
    }
    for (Pending& record : records) all.push_back(std::move(record));
    return all;
}

Result<std::vector<std::string>> AuditLog::Seal(const std::vector<Pending>& all, std::uint64_t seq,
                                                std::string prev, const std::string& ts) const {
    std::vector<std::string> lines;
    lines.reserve(all.size());
    for (const Pending& record : all) {
        std::string line = SealRecord(seq++, ts, record.event, record.fields, prev, key_);
        if (line.empty()) return Error::kAuditFailed;
        prev = SealOf(line);
        lines.push_back(std::move(line));
    }
    return lines;
}

void AuditLog::Written(std::size_t records, std::uint64_t next_seq, std::string last_hash) {
    next_seq_ = next_seq;
    last_hash_ = std::move(last_hash);
    pending_.clear();
    if (failures_in_a_row_ > 0) {
        Log::Info("the audit trail is written again",
                  {{"file", Where()}, {"failedAppends", std::to_string(failures_in_a_row_)}});
        failures_in_a_row_ = 0;
    }
    since_checkpoint_ += records;
}

Result<void> AuditLog::WriteTableLocked(std::vector<Pending> all, std::size_t count) {
    if (all.empty()) return {};
    const std::string ts = Now();
    std::uint64_t next_seq = 0;
    std::string last_hash;
    auto stored = options_.table->Append([&](const TrailHead& head) -> Result<SealedBatch> {
        // The first record of a new trail says so, whichever replica writes it.
        std::vector<Pending> batch;
        if (head.seq == 0) {
            batch.push_back(StartRecord());
        }
        batch.insert(batch.end(), all.begin(), all.end());
        auto lines = Seal(batch, head.seq + 1, head.hash, ts);
        if (!lines) return lines.error();
        SealedBatch sealed;
        sealed.head = TrailHead{head.seq + lines->size(), SealOf(lines->back())};
        sealed.checkpoint =
            SealCheckpoint(CheckpointAt(sealed.head.seq, sealed.head.hash, ts), key_);
        if (sealed.checkpoint.empty()) return Error::kAuditFailed;
        sealed.lines = std::move(*lines);
        next_seq = sealed.head.seq + 1;
        last_hash = sealed.head.hash;
        return sealed;
    });
    if (!stored) {
        NoteFailure(stored.error(), count);
        return stored.error();
    }
    Written(all.size(), next_seq, std::move(last_hash));
    return {};
}

Result<void> AuditLog::WriteLocked(std::vector<Pending> records) {
    if (closed_) return Error::kShuttingDown;
    const std::size_t count = records.size();
    if (options_.table) return WriteTableLocked(Gathered(std::move(records)), count);
    if (!file_) {
        if (auto opened = OpenActiveFile(); !opened) {
            NoteFailure(opened.error(), count);
            return opened.error();
        }
    }
    // A failed write may have left part of a line: cut back to the last whole record first.
    if (dirty_) {
        if (auto cut = file_->Truncate(good_size_); !cut) {
            NoteFailure(cut.error(), count);
            return cut.error();
        }
        dirty_ = false;
    }
    if (auto size = file_->Size(); size && *size != good_size_) {
        // Only this object writes the file (TrailLock): a change is another program's doing.
        Log::Error(*size < good_size_
                       ? "the audit trail was cut by another program (logrotate's copytruncate?); "
                         "MicroCare rotates its trail itself, no other program may"
                       : "another program wrote to the audit trail",
                   {{"file", FileName(settings_.path)},
                    {"expectedBytes", std::to_string(good_size_)},
                    {"foundBytes", std::to_string(*size)}});
        good_size_ = *size;
        if (good_size_ == 0) file_first_seq_ = next_seq_;
    }
    std::vector<Pending> all = Gathered(std::move(records));
    if (all.empty()) return {};
    auto lines = Seal(all, next_seq_, last_hash_, Now());
    if (!lines) {
        NoteFailure(lines.error(), count);
        return lines.error();
    }
    std::string batch;
    for (const std::string& line : *lines) (batch += line) += '\n';
    if (auto written = file_->Append(batch); !written) {
        NoteFailure(written.error(), count);
        dirty_ = true;
        if (file_->Truncate(good_size_)) dirty_ = false;
        return written.error();
    }
    good_size_ += batch.size();
    Written(all.size(), next_seq_ + lines->size(), SealOf(lines->back()));
    return {};
}

Result<void> AuditLog::CheckpointLocked() {
    if (options_.table) return {};  // each append moved the table's
    auto written = WriteCheckpoint(CheckpointPathOf(settings_),
                                   CheckpointAt(next_seq_ - 1, last_hash_, Now()), key_);
    if (!written) {
        Log::Warning("cannot write the audit checkpoint; trying again with the next record",
                     {{"error", written.error().message()}});
        return written;
    }
    since_checkpoint_ = 0;
    last_checkpoint_ = options_.clock();
    return {};
}

void AuditLog::MaybeCheckpointLocked() {
    if (since_checkpoint_ == 0) return;
    if (since_checkpoint_ >= settings_.checkpoint_every ||
        options_.clock() - last_checkpoint_ >= settings_.checkpoint_interval) {
        (void)CheckpointLocked();
    }
}

void AuditLog::MaybeRotateLocked() {
    if (options_.table) return;
    const bool big = settings_.rotate_bytes != 0 && good_size_ >= settings_.rotate_bytes;
    const bool old = settings_.rotate_every.count() != 0 &&
                     options_.clock() - file_started_ >= settings_.rotate_every;
    if (!file_ || !(big || old)) return;
    const std::string rotated = RotatedPath(settings_.path, file_first_seq_);
    std::error_code ec;
    if (std::filesystem::exists(rotated, ec) || ec) {
        Log::Error("cannot rotate the audit trail: the rotated file exists already",
                   {{"file", FileName(rotated)}});
        return;
    }
    if (std::rename(settings_.path.c_str(), rotated.c_str()) != 0) {
        Log::Warning("cannot rotate the audit trail; trying again with the next record",
                     {{"error", LastSystemError().message()}});
        return;
    }
    file_.reset();
    (void)SyncDirectoryOf(settings_.path);
    // The new file begins by naming the one before it; the chain goes on through it.
    pending_.push_back(Pending{std::string(kEventContinue),
                               {{"format", std::string(kFormat)},
                                {"key", key_.id()},
                                {"previousFile", FileName(rotated)}}});
    if (!WriteLocked({})) return;  // logged; the next Append writes it
    ApplyRetentionLocked();
    (void)CheckpointLocked();
}

std::optional<std::chrono::system_clock::time_point> AuditLog::ParseTs(std::string_view ts) {
    auto parsed = fhir::DateTime::Parse(ts);
    if (!parsed) return std::nullopt;
    return std::chrono::system_clock::time_point(parsed->Earliest().time_since_epoch());
}

void AuditLog::ApplyRetentionLocked() {
    if (settings_.keep_files == 0 && settings_.keep_for.count() == 0) return;
    std::vector<TrailFile> rotated;
    for (TrailFile& file : ListTrailFiles(settings_.path).files) {
        if (!file.active) rotated.push_back(std::move(file));
    }
    while (!rotated.empty()) {
        // Where the removed file ended is where the next one begins (a rotated file or the
        // active one): its first record's prev, and its ts the time the old file was done.
        const std::string& next = rotated.size() > 1 ? rotated[1].path : settings_.path;
        const std::optional<AuditRecord> first = FirstRecordOf(next);
        if (!first) {
            Log::Error("retention stopped: an audit file does not begin with a record",
                       {{"file", FileName(next)}});
            return;
        }
        const bool too_many = settings_.keep_files != 0 && rotated.size() > settings_.keep_files;
        const auto done_at = ParseTs(first->ts);
        const bool too_old = settings_.keep_for.count() != 0 && done_at &&
                             options_.clock() - *done_at > settings_.keep_for;
        if (!too_many && !too_old) return;
        const TrailFile& oldest = rotated.front();
        // Recorded before the file goes: a crash in between leaves a file too many, never a
        // removal nobody recorded.
        Pending record{std::string(kEventRetention),
                       {{"removed", oldest.name},
                        {"firstSeq", std::to_string(oldest.first_seq)},
                        {"lastSeq", std::to_string(first->seq - 1)},
                        {"lastHash", first->prev},
                        {"keepFiles", std::to_string(settings_.keep_files)},
                        {"keepHours", std::to_string(settings_.keep_for.count())}}};
        if (!WriteLocked({record})) return;
        if (std::remove(oldest.path.c_str()) != 0) {
            Log::Warning("cannot remove an old audit file", {{"file", oldest.name}});
            return;
        }
        (void)SyncDirectoryOf(settings_.path);
        Log::Info("an old audit file was removed (audit.keepFiles, audit.keepHours)",
                  {{"file", oldest.name}});
        rotated.erase(rotated.begin());
    }
}

}  // namespace microcare::adapter
