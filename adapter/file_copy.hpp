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

// Copies the regular file `from` into a new file `to` (refused if it exists) with `mode`, and
// fsyncs it. A missing `from` is Error::kNotFound.
Result<void> CopyFileDurably(const std::string& from, const std::string& to, unsigned mode,
                             CopyExtent extent = CopyExtent::kWhole);

}  // namespace microcare::adapter
