#pragma once

#include <cstddef>
#include <iosfwd>
#include <string>

#include "adapter/error.hpp"

namespace microcare::adapter {

class AuditLog;
class JobStore;
struct AuditSettings;

// The OS user running this process (getpwuid(geteuid())), or `uid N` when it has no name: who
// an admin record names. Set by the system, not by an argument the admin could choose.
std::string OsUser();

// Writes the admin notes waiting in the store (JobStore::PendingAdminNotes) into the audit
// trail, oldest first, each with its note id, and forgets each batch once it is durable there.
// The service calls it periodically; the command line calls it itself when no service holds the
// trail. A crash between the two steps writes a note twice, never loses one: the repeated
// record has the same `note` id. Returns how many were written.
Result<std::size_t> WriteAdminNotes(JobStore& store, AuditLog& audit);

// After a command has committed a note: writes the notes into the trail `settings` names now
// when no service holds it (its lock is free); otherwise the service writes them within seconds.
// Without settings (a command given only the store), or run as root on the trail of a service
// that runs as another user, the service writes them when it runs.
// Says which on `out`.
void RecordAdminNotes(const AuditSettings* settings, JobStore& store, std::ostream& out);

}  // namespace microcare::adapter
