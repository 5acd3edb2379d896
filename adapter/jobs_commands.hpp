#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace microcare::adapter {

// `microcare jobs list|show|retry|purge`: the store is named by --store, or by --config (the
// service configuration, which also names the audit trail). A store that does not exist is an
// error that names it (exit 2): no command creates one, and list and show open it read-only.
// Times (`--since`, `--done-before`) are compared with a job's last change (`updated`).
struct JobsArgs {
    std::string config_path;
    std::string store_path;
    std::optional<std::string> state;  // list, retry: queued | running | done | dead
    std::string since;                 // list, retry: changed at or after (a FHIR date/instant)
    std::string encounter;             // list: `Encounter/id` or `id`
    std::size_t limit = 50;            // list
    std::int64_t id = 0;               // show
    std::vector<std::int64_t> ids;     // retry: these, or every job the filters select
    std::string done_before;           // purge
};

// Newest first, then the total per state of the whole store.
int RunJobsList(const JobsArgs& args, std::ostream& out, std::ostream& err);
// One job; its outcome, when an OperationOutcome, as one line per issue.
int RunJobsShow(const JobsArgs& args, std::ostream& out, std::ostream& err);
// Done or dead jobs back in the queue: by id, or in bulk (--state done|dead, --since); recorded
// in the audit trail with the OS user.
int RunJobsRetry(const JobsArgs& args, std::ostream& out, std::ostream& err);
// Deletes done jobs last changed before --done-before; recorded in the audit trail.
int RunJobsPurge(const JobsArgs& args, std::ostream& out, std::ostream& err);
// `microcare store migrate`: brings the store's schema up to date (creating the store where
// there is none) and says from which version to which. Safe beside running replicas.
int RunStoreMigrate(const JobsArgs& args, std::ostream& out, std::ostream& err);

}  // namespace microcare::adapter
