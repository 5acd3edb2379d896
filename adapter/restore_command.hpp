#pragma once

#include <iosfwd>

#include "adapter/backup_command.hpp"

namespace microcare::adapter {

// `microcare restore --config FILE DIR`: puts a backup (`microcare backup`) in the places FILE
// names, the service stopped. Refused before anything is replaced when the service holds the
// audit trail (exit 1), or when the backup is unfinished (no manifest), a file is missing or
// differs from its size or SHA-256, the store copy is not a store this release reads, or the
// copied trail does not verify with the configured key against its checkpoint (exit 2).
// What was there is moved into `microcare-pre-restore-<time>/` beside it, never deleted; each
// restored file lands whole (written beside it, fsynced, renamed). The configuration itself is
// not replaced (it names where things go); restore says when the backup's differs. The restore
// is recorded in the restored trail. A PostgreSQL store (store.url) is restored with pg_restore
// into the store's schema, which must be empty (exit 1 otherwise) and be the one the dump was
// taken from (exit 2), after the same checks of the backup; its trail is verified where it
// lands.
int RunRestore(const BackupArgs& args, std::ostream& out, std::ostream& err);

}  // namespace microcare::adapter
