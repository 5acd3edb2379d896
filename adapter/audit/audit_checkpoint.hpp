#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adapter/audit/audit_key.hpp"
#include "adapter/error.hpp"

namespace microcare::adapter {

// The head of the trail as it was at a moment, sealed with the trail's key and kept apart from
// it. A trail that ends before the checkpoint's record was cut or emptied; one whose record
// there has another hash was rewritten. Without the key neither can be hidden, since a new
// checkpoint cannot be sealed.
struct AuditCheckpoint {
    std::uint64_t records = 0;  // seq of the last record
    std::string last_hash;
    std::string file;  // name of the file holding it
    std::string time;  // when the checkpoint was written (RFC 3339)
    std::string key_id;
};

// One JSON line: {"format":"2","records":"..","lastHash":"..","file":"..","time":"..",
// "key":"..","hash":".."}; empty when it could not be sealed.
std::string SealCheckpoint(const AuditCheckpoint& checkpoint, const ChainKey& key);

// Writes it durably in place of the previous one.
Result<void> WriteCheckpoint(const std::string& path, const AuditCheckpoint& checkpoint,
                             const ChainKey& key);

struct CheckpointRead {
    bool missing = false;                       // no such file
    std::optional<AuditCheckpoint> checkpoint;  // set when it is whole and its seal is right
    std::string problem;                        // otherwise, why not
    bool other_key = false;                     // whole, but sealed with a key that was not given
};
// Reads and checks a checkpoint. It must be sealed with one of `keys`, or with none when no key
// is given: with a key configured an unkeyed checkpoint is a forgery.
CheckpointRead ReadCheckpoint(const std::string& path, const std::vector<ChainKey>& keys);
// The same for a checkpoint's line (without its newline) kept elsewhere (a database): `where`
// names it in the problem.
CheckpointRead ReadCheckpointLine(std::string line, const std::string& where,
                                  const std::vector<ChainKey>& keys);

}  // namespace microcare::adapter
