#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adapter/audit/audit_settings.hpp"

namespace microcare::adapter {

// The files of one trail. MicroCare rotates its own trail: the active file `audit.log` is
// renamed `audit.log.000000000101` (the seq of its first record, so names sort in order) and a
// new one begins whose first record names that file and carries its last hash.
struct TrailFile {
    std::string path;
    std::string name;             // the file name alone, as records name it
    std::uint64_t first_seq = 0;  // from a rotated file's name; 0 for the active file
    bool active = false;
};

struct TrailFileSet {
    std::vector<TrailFile> files;  // rotated files in order, then the active file if it exists
    // Other files beside the trail whose names begin with its own (`audit.log.1`,
    // `audit.log-20250101.gz`): what a logrotate left, not part of the chain.
    std::vector<std::string> strangers;
};

TrailFileSet ListTrailFiles(const std::string& active_path);

// `<active path>.<first seq, 12 digits>`
std::string RotatedPath(const std::string& active_path, std::uint64_t first_seq);

// The file name alone.
std::string FileName(const std::string& path);

// The checkpoint file of a trail: the configured one, or `<path>.checkpoint`.
std::string CheckpointPathOf(const AuditSettings& settings);

}  // namespace microcare::adapter
