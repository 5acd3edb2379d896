#pragma once

#include <iosfwd>
#include <string>

namespace microcare::adapter {

// `microcare backup --config FILE DIR` and `microcare restore --config FILE DIR`.
struct BackupArgs {
    std::string config_path;
    std::string dir;
};

// A consistent backup into the new folder DIR while the service runs: the job store through
// SQLite's online backup (a PostgreSQL store: pg_dump of its schema, store/pg_dump), then the audit
// trail's checkpoint and after it the trail (rotated files, then the active one up to its last
// whole record, again if the service rotated meanwhile), the rule pack with its value-set files,
// the configuration, and last `manifest.json` (sizes and SHA-256). The copied trail is verified
// with the configured key; the backup is recorded in the live trail (through the store's admin
// notes, as `jobs retry` is). Exit 0 when whole and the copy verifies; 1 when a file could not be
// copied or the copied trail does not verify; 2 when the configuration or DIR is refused.
int RunBackup(const BackupArgs& args, std::ostream& out, std::ostream& err);

}  // namespace microcare::adapter
