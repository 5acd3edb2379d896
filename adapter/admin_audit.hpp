#pragma once

#include <cstddef>
#include <string>

#include "adapter/error.hpp"

namespace microcare::adapter {

class AuditLog;
class JobStore;

// The OS user running this process (getpwuid(geteuid())), or `uid N` when it has no name: who
// an admin record names. Set by the system, not by an argument the admin could choose.
std::string OsUser();

// Writes the admin notes waiting in the store (JobStore::PendingAdminNotes) into the audit
// trail, oldest first, each with its note id, and forgets each batch once it is durable there.
// The service calls it periodically; the command line calls it itself when no service holds the
// trail. A crash between the two steps writes a note twice, never loses one: the repeated
// record has the same `note` id. Returns how many were written.
Result<std::size_t> WriteAdminNotes(JobStore& store, AuditLog& audit);

}  // namespace microcare::adapter
