#pragma once

#include <string>
#include <string_view>

namespace microcare::adapter {

// Where a store is, as the configuration and the command line name it; apart from the stores
// themselves so that the configuration's parser (and its fuzzer) needs neither SQLite nor libpq.

// Whether a store location names a PostgreSQL database (postgresql:// or postgres://) rather
// than a SQLite file.
bool IsPostgresUrl(std::string_view location);
// A store location fit for logs and status output: a URL's password (in the user info or a
// `password=` parameter) replaced by "***"; a file path as it is.
std::string RedactStoreLocation(std::string_view location);

}  // namespace microcare::adapter
