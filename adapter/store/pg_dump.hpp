#pragma once

#include <string>

#include "adapter/error.hpp"

namespace microcare::adapter {

// A consistent copy of a PostgreSQL store, taken by PostgreSQL's own pg_dump (custom format, one
// snapshot, every table of the store's schema, the first of its search_path, with its
// sequences, and nothing else of the database): what `microcare backup`
// puts in a backup folder for a store.url. The connection settings reach pg_dump through its
// environment (PGHOST, PGPASSWORD, ...), never its command line, which other local users can
// read. `problem` says why it failed (no pg_dump, its exit status); pg_dump's own messages go
// to standard error.
Result<void> DumpPostgresStore(const std::string& url, const std::string& file,
                               std::string& problem);

// Puts such a copy back with pg_restore, the same way: into the store's schema, which must
// exist, hold nothing yet (kConflict otherwise: another store, or replicas still running) and
// be the schema the copy was taken from (pg_restore puts every object back where it was:
// kInvalidConfig otherwise, as for a store of a later release's schema version). The schema's own
// CREATE is left out, the schema being there (the default `public` always is). One transaction that
// stops at the first error: a restore that fails leaves the schema as empty as it found it.
Result<void> RestorePostgresStore(const std::string& url, const std::string& file,
                                  std::string& problem);

}  // namespace microcare::adapter
