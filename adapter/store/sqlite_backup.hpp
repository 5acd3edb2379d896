#pragma once

#include <string>

#include "adapter/error.hpp"

namespace microcare::adapter {

// A consistent copy of a SQLite database at `source` into a new file `destination`, taken with
// SQLite's online backup API while other processes (the running service) keep writing: the
// copy is one read transaction, which in WAL mode never blocks the writer and is never
// restarted by its commits. The copy is left in rollback-journal mode (a plain file that
// opening read-only changes nothing beside), and fsynced; the store goes back to WAL when the
// service opens it. A missing source is Error::kNotFound and is never created.
Result<void> BackupSqliteDatabase(const std::string& source, const std::string& destination);

// Whether a copy of the job store can be served: SQLite's quick_check passes and its schema
// version is one this build reads. Empty when it can; otherwise what is wrong.
std::string ProblemWithStoreCopy(const std::string& path);

}  // namespace microcare::adapter
