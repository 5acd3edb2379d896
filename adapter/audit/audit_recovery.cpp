// Opening the trail at start-up: finding its head, cutting a torn last line, holding it against
// its checkpoint, and refusing a damaged trail with where and how to look.
#include <cstdio>
#include <filesystem>

#include "adapter/audit/audit_chain.hpp"
#include "adapter/audit/audit_checkpoint.hpp"
#include "adapter/audit/audit_file_set.hpp"
#include "adapter/audit/audit_log.hpp"
#include "adapter/audit/audit_verify.hpp"
#include "adapter/log.hpp"

namespace microcare::adapter {
namespace {

// Problems that do not stop the service: a file sealed with another key is closed and the
// trail continues in a new one; a file that lost its beginning to another program is extended
// (verify names what is missing); a checkpoint found missing at an earlier start is already
// recorded.
bool StopsTheService(const AuditFinding& finding) {
    return finding.kind != AuditFinding::Kind::kKeyNeeded &&
           finding.kind != AuditFinding::Kind::kCutFromFront &&
           finding.kind != AuditFinding::Kind::kCheckpointMissing;
}

const AuditFinding* FirstStopper(const FileScan& scan) {
    for (const AuditFinding& finding : scan.problems) {
        if (StopsTheService(finding)) return &finding;
    }
    return nullptr;
}

}  // namespace

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const AuditSettings& settings, Options options,
                                                 std::string* problem) {
    std::string why;
    auto fail = [&](boost::system::error_code error) -> Result<std::unique_ptr<AuditLog>> {
        if (problem != nullptr) *problem = why;
        return error;
    };
    ChainKey key;
    if (!settings.key.empty() || !settings.key_file.empty()) {
        auto keyed = ChainKey::Hmac(settings.key);
        if (!keyed) {
            const std::string reason = ChainKey::KeyProblem(settings.key);
            why = "audit.keyFile: " + (reason.empty() ? "the key cannot be used" : reason);
            Log::Error("the audit key is refused", {{"problem", why}});
            return fail(keyed.error());
        }
        key = std::move(*keyed);
    }
    if (!options.open_file) options.open_file = OpenAuditFile;
    if (!options.clock) options.clock = [] { return std::chrono::system_clock::now(); };
    if (options.table) {
        std::unique_ptr<AuditLog> log(
            new AuditLog(settings, key, std::move(options), std::nullopt));
        std::lock_guard guard(log->mutex_);
        if (auto recovered = log->RecoverTable(why); !recovered) {
            log->closed_ = true;
            return fail(recovered.error());
        }
        return log;
    }
    for (const std::string& file : {settings.path, CheckpointPathOf(settings)}) {
        std::error_code ignored;
        const auto parent = std::filesystem::path(file).parent_path();
        if (!parent.empty()) std::filesystem::create_directories(parent, ignored);
    }
    auto lock = TrailLock::Acquire(settings.path);
    if (!lock) {
        why = settings.path + ": cannot lock the audit trail (" + settings.path +
              ".lock: " + lock.error().message() +
              "); another MicroCare holds it, and two writers would fork its chain";
        Log::Error("cannot lock the audit trail", {{"error", lock.error().message()}});
        return fail(lock.error());
    }
    std::unique_ptr<AuditLog> log(
        new AuditLog(settings, key, std::move(options), std::move(*lock)));
    std::lock_guard guard(log->mutex_);
    if (auto recovered = log->Recover(why); !recovered) {
        log->closed_ = true;  // nothing more is written, not even a checkpoint
        return fail(recovered.error());
    }
    return log;
}

Result<void> AuditLog::RecoverTable(std::string& problem) {
    auto refuse = [&](const std::string& what) {
        problem = "the audit trail in the database: " + what +
                  ". MicroCare does not extend a damaged audit trail. Inspect it with "
                  "`microcare audit verify --config <the service configuration>`; "
                  "deploy/OPERATIONS.md says how to recover";
        Log::Error("the audit trail is damaged; MicroCare will not extend it",
                   {{"file", "database"},
                    {"problem", what},
                    {"inspect", "microcare audit verify --config FILE"}});
        return Result<void>(Error::kAuditDamaged);
    };
    auto stored = options_.table->ReadHead();
    if (!stored) {
        problem = "cannot read the audit trail's head from the database";
        return stored.error();
    }
    const TrailHead& head = stored->head;
    if (head.seq > 0) {
        // Every replica seals with the same key: two keys in one chain would make each one's
        // records unverifiable with the other's.
        std::vector<ChainKey> keys;
        if (key_.keyed()) keys.push_back(key_);
        const CheckpointRead read = ReadCheckpointLine(stored->checkpoint, "in the database", keys);
        if (!read.checkpoint) {
            return refuse(read.other_key ? read.problem +
                                               "; every replica must be given the same "
                                               "audit key (audit.keyFile)"
                                         : read.problem);
        }
        if (read.checkpoint->records != head.seq ||
            !SealsEqual(read.checkpoint->last_hash, head.hash)) {
            return refuse("the head (record " + std::to_string(head.seq) +
                          ") is not the one its checkpoint of " + read.checkpoint->time +
                          " sealed (record " + std::to_string(read.checkpoint->records) + ")");
        }
        std::string why;
        const std::optional<AuditRecord> last = ParseRecordLine(stored->last_line, why);
        if (!last || last->seq != head.seq || !SealsEqual(last->hash, head.hash)) {
            return refuse("record " + std::to_string(head.seq) +
                          (stored->last_line.empty()
                               ? " of the checkpoint is missing: records were cut from the end"
                               : " is not the one the checkpoint sealed: the chain was rewritten"));
        }
    }
    next_seq_ = head.seq + 1;
    last_hash_ = head.seq > 0 ? head.hash : std::string(kGenesisHash);
    return {};
}

Result<void> AuditLog::Recover(std::string& problem) {
    const std::string& path = settings_.path;
    const std::string checkpoint_path = CheckpointPathOf(settings_);
    auto refuse = [&](const std::string& file, std::size_t line, const std::string& what) {
        problem = file + (line > 0 ? ":" + std::to_string(line) : std::string()) + ": " + what +
                  ". MicroCare does not extend a damaged audit trail. Inspect it with "
                  "`microcare audit verify --config <the service configuration>`" +
                  (line > 0 ? " and `sed -n '" + std::to_string(line) + "p' " + file + "`"
                            : std::string()) +
                  "; deploy/OPERATIONS.md says how to recover";
        Log::Error("the audit trail is damaged; MicroCare will not extend it",
                   {{"file", file},
                    {"line", std::to_string(line)},
                    {"problem", what},
                    {"inspect", "microcare audit verify --config FILE"}});
        return Result<void>(Error::kAuditDamaged);
    };
    std::vector<ChainKey> keys;
    if (key_.keyed()) keys.push_back(key_);

    const TrailFileSet set = ListTrailFiles(path);
    const CheckpointRead read = ReadCheckpoint(checkpoint_path, keys);
    const std::uint64_t checkpoint_seq = read.checkpoint ? read.checkpoint->records : 0;

    // The head: the active file's last record, or the last rotated file's when the active file
    // is missing or empty (a crash between a rotation's rename and the new file's first record).
    std::uint64_t head_seq = 0;
    std::string head_hash(kGenesisHash);
    std::string hash_at_checkpoint;
    std::optional<TrailFile> active;
    std::optional<FileScan> scan;
    if (!set.files.empty() && set.files.back().active) {
        active = set.files.back();
        scan = ScanTrailFile(*active, keys, checkpoint_seq);
        if (const AuditFinding* bad = FirstStopper(*scan)) {
            return refuse(active->path, bad->line, bad->message);
        }
    }
    if (scan && scan->records > 0) {
        head_seq = scan->last_seq;
        head_hash = scan->last_hash;
        file_first_seq_ = scan->first_seq;
        file_started_ = ParseTs(scan->first_ts).value_or(options_.clock());
        hash_at_checkpoint = scan->hash_at_seq;
        for (const AuditFinding& finding : scan->problems) {
            if (finding.kind == AuditFinding::Kind::kCutFromFront) {
                Log::Warning(
                    "the audit trail's active file lost its beginning to another "
                    "program (logrotate's copytruncate?); MicroCare rotates the trail "
                    "itself: remove any logrotate rule for it",
                    {{"file", active->name}});
            }
        }
    } else {
        const TrailFile* last_rotated = nullptr;
        for (const TrailFile& file : set.files) {
            if (!file.active) last_rotated = &file;
        }
        if (last_rotated != nullptr) {
            FileScan previous = ScanTrailFile(*last_rotated, keys, checkpoint_seq);
            if (const AuditFinding* bad = FirstStopper(previous)) {
                return refuse(last_rotated->path, bad->line, bad->message);
            }
            if (previous.records == 0 || previous.torn_line) {
                return refuse(last_rotated->path, 0,
                              "the last rotated file is empty or unfinished");
            }
            head_seq = previous.last_seq;
            head_hash = previous.last_hash;
            hash_at_checkpoint = previous.hash_at_seq;
            pending_.push_back(Pending{std::string(kEventContinue),
                                       {{"format", std::string(kFormat)},
                                        {"key", key_.id()},
                                        {"previousFile", last_rotated->name}}});
        } else {
            pending_.push_back(StartRecord());
        }
    }

    // The checkpoint: a trail that ends before it, or differs at its record, lost records.
    bool checkpoint_missing = false;
    if (read.checkpoint) {
        const AuditCheckpoint& c = *read.checkpoint;
        if (c.records > head_seq) {
            return refuse(path, 0,
                          head_seq == 0
                              ? "the trail holds no records but its checkpoint of " + c.time +
                                    " names " + std::to_string(c.records) +
                                    ": it was emptied or removed"
                              : "the trail ends at record " + std::to_string(head_seq) +
                                    " but its checkpoint of " + c.time + " names record " +
                                    std::to_string(c.records) + ": records were cut from the end");
        }
        if (!hash_at_checkpoint.empty() && !SealsEqual(hash_at_checkpoint, c.last_hash)) {
            return refuse(path, 0,
                          "record " + std::to_string(c.records) +
                              " is not the one its checkpoint of " + c.time +
                              " sealed: the chain was rewritten");
        }
    } else if (read.missing) {
        // Earlier releases wrote no checkpoint: a trail of theirs is not missing one.
        const bool legacy = scan && scan->key_id == kLegacyFormat;
        if (head_seq > 0 && !legacy) {
            checkpoint_missing = true;
            Log::Error(
                "the audit trail's checkpoint is missing: records cut from its end "
                "before now cannot be seen; the trail records this",
                {{"checkpoint", checkpoint_path}});
        }
    } else if (read.other_key) {
        Log::Warning("the audit checkpoint is sealed with another key: the audit key changed",
                     {{"checkpoint", checkpoint_path}});
    } else {
        return refuse(checkpoint_path, 0, read.problem);
    }

    // A torn last line is a record that was never acknowledged: cut it off, and say so.
    if (scan && scan->torn_line) {
        auto file = options_.open_file(path);
        if (!file) {
            problem = path + ": cannot open the audit trail: " + file.error().message();
            return file.error();
        }
        if (auto cut = (*file)->Truncate(scan->good_bytes); !cut) {
            problem = path + ": cannot cut the unfinished last line: " + cut.error().message();
            return cut.error();
        }
        Log::Warning(
            "the audit trail's last line was unfinished (a crash while it was "
            "written): cut off, and recorded",
            {{"file", active->name}, {"line", std::to_string(*scan->torn_line)}});
        pending_.push_back(Pending{std::string(kEventRepair),
                                   {{"file", active->name},
                                    {"line", std::to_string(*scan->torn_line)},
                                    {"bytes", std::to_string(scan->torn_bytes)}}});
    }

    // A new key (or the new format) seals a new file: the records before stay as they were.
    if (scan && scan->records > 0 && !scan->key_id.empty() && scan->key_id != key_.id()) {
        const std::string rotated = RotatedPath(path, scan->first_seq);
        std::error_code ec;
        if (std::filesystem::exists(rotated, ec) ||
            std::rename(path.c_str(), rotated.c_str()) != 0) {
            problem = path +
                      ": the audit key or format changed, and the file cannot be set aside as " +
                      rotated;
            return Error::kAuditDamaged;
        }
        (void)SyncDirectoryOf(path);
        if (scan->key_id == kLegacyFormat) {
            Log::Info(
                "the audit trail of an earlier release is kept as it is; the trail "
                "continues in a new file, in the new format",
                {{"file", FileName(rotated)}});
        } else {
            Log::Warning("the audit key changed: the trail continues in a new file",
                         {{"previousKey", scan->key_id}, {"key", key_.id()}});
        }
        // The continuation goes first; a repair record stays after it.
        pending_.insert(pending_.begin(), Pending{std::string(kEventContinue),
                                                  {{"format", std::string(kFormat)},
                                                   {"key", key_.id()},
                                                   {"previousFile", FileName(rotated)},
                                                   {"previousKey", scan->key_id}}});
    }
    if (checkpoint_missing) {
        pending_.push_back(
            Pending{std::string(kEventNoCheckpoint), {{"checkpoint", FileName(checkpoint_path)}}});
    }

    next_seq_ = head_seq + 1;
    last_hash_ = head_hash;
    // A new trail gets its checkpoint before its first record: from then on, a trail without
    // one has lost it.
    if (head_seq == 0 && !read.checkpoint) {
        if (auto written = CheckpointLocked(); !written) {
            problem =
                checkpoint_path + ": cannot write the checkpoint: " + written.error().message();
            return written;
        }
    }
    if (auto opened = OpenActiveFile(); !opened) {
        problem = path + ": cannot open the audit trail: " + opened.error().message();
        return opened;
    }
    if (auto written = WriteLocked({}); !written) {
        problem = path + ": cannot write the audit trail: " + written.error().message();
        return written;
    }
    if (auto written = CheckpointLocked(); !written) {
        problem = checkpoint_path + ": cannot write the checkpoint: " + written.error().message();
        return written;
    }
    return {};
}

}  // namespace microcare::adapter
