#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/audit/audit_checkpoint.hpp"
#include "adapter/audit/audit_file_set.hpp"
#include "adapter/audit/audit_key.hpp"
#include "adapter/audit/audit_settings.hpp"

namespace microcare::adapter {

// What is wrong with a trail, and where.
struct AuditFinding {
    enum class Kind {
        kUnreadable,         // a file cannot be read, or there is no trail
        kNotARecord,         // a line that is not a sealed audit record
        kAppendedAfterHash,  // bytes after the seal: members added to a sealed record
        kEdited,             // the content differs from what was sealed
        kForged,             // sealed with plain SHA-256 where the trail is keyed
        kRemoved,            // records missing between two lines
        kReordered,          // records out of order, or one repeated
        kChainBroken,        // a prev that is not the hash of the record before
        kCutFromFront,       // a file that begins with a record from the middle (copytruncate)
        kOlderFilesMissing,  // the first records are gone and no retention record says why
        kFileRenamed,        // a rotated file whose name is not its first record's seq
        kRestarted,          // a new chain begins inside the trail
        kTornLine,           // an unfinished last line
        kCutFromEnd,         // the trail ends before the checkpoint's record
        kEmptied,            // no records, but the checkpoint names some
        kRewritten,          // the checkpoint's record has another hash
        kCheckpointInvalid,  // the checkpoint is unreadable, edited or forged
        kCheckpointMissing,  // no checkpoint, or the service once started without one
        kKeyNeeded,          // sealed with a key that was not given
        kUnkeyed,            // (a note) a file sealed without a key
        kStranger,           // (a note) a file beside the trail that is not part of it
    };
    Kind kind;
    std::string file;      // the file's name; empty for the trail as a whole
    std::size_t line = 0;  // 1-based; 0 when it is about a whole file or the trail
    std::string message;
};

// A short name for each kind ("edited", "cut-from-end", ...), for tables and JSON.
std::string_view ToString(AuditFinding::Kind kind);

struct AuditFileSummary {
    std::string name;
    std::size_t records = 0;
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;
    std::string key_id;  // from the file's first record
};

struct AuditReport {
    std::vector<AuditFileSummary> files;
    std::uint64_t records = 0;   // records read, in all files
    std::uint64_t head_seq = 0;  // the last record's seq and hash
    std::string head_hash;
    std::optional<AuditCheckpoint> checkpoint;
    std::vector<AuditFinding> problems;  // empty: the trail is intact
    std::vector<AuditFinding> notes;     // worth knowing, not a break
    bool intact() const { return problems.empty(); }
};

struct TrailToVerify {
    std::string path;                  // the active file
    std::vector<ChainKey> keys;        // the configured key, and older ones; empty: unkeyed
    std::string checkpoint_path;       // empty: the checkpoint is not checked
    std::shared_ptr<const void> keep;  // what the paths need (a scratch copy of the trail)
    std::string shown_as;              // what messages call the trail; empty: its path
};

// The trail a configuration names: its active file, its checkpoint and its key (nullopt when
// the configured key cannot be used).
std::optional<TrailToVerify> ConfiguredTrail(const AuditSettings& settings);

// Checks every file of the trail in order, each record's seal, the chain across files, the
// retention records, and the head against the checkpoint.
AuditReport VerifyTrail(const TrailToVerify& trail);

// One file, as the service reads its active file at start-up.
struct FileScan {
    std::size_t records = 0;
    std::uint64_t good_bytes = 0;          // where the last complete line ends
    std::optional<std::size_t> torn_line;  // a last line without its newline
    std::uint64_t torn_bytes = 0;
    std::uint64_t first_seq = 0;
    std::string first_ts;  // when its first record was written
    std::uint64_t last_seq = 0;
    std::string last_hash;
    std::string key_id;       // from its first record; empty when it has none
    std::string hash_at_seq;  // the hash of the record `remember_seq`, when the file has it
    std::vector<AuditFinding> problems;
};
FileScan ScanTrailFile(const TrailFile& file, const std::vector<ChainKey>& keys,
                       std::uint64_t remember_seq = 0);

}  // namespace microcare::adapter
