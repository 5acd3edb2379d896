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

}  // namespace microcare::adapter
