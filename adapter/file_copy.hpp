#pragma once

#include <string>

#include "adapter/error.hpp"

namespace microcare::adapter {

enum class CopyExtent {
    kWhole,
    // Up to the last newline: a file another process appends lines to (the audit trail's
    // active file) copied without the line being written at that moment.
    kWholeLines,
};

// Copies the regular file `from` into a new file `to` (refused if it exists) with `mode`. A
// missing `from` is Error::kNotFound. Not synced: SyncFile once the copies are done, so that a
// copy racing a writer (the trail rotating) is quick to take again.
Result<void> CopyRegularFile(const std::string& from, const std::string& to, unsigned mode,
                             CopyExtent extent = CopyExtent::kWhole);

// fsync of a file, so that what was written to it survives a crash.
Result<void> SyncFile(const std::string& path);

}  // namespace microcare::adapter
