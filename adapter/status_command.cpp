#include "adapter/status_command.hpp"

#include <filesystem>
#include <ostream>

#include "adapter/audit_commands.hpp"
#include "adapter/issue_report.hpp"
#include "adapter/rule_pack_file.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"
#include "fhir/date_time.hpp"

namespace microcare::adapter {

int RunStatus(const std::string& config_path, std::ostream& out, std::ostream& err) {
    fhir::IssueList issues;
    auto config = LoadServiceConfig(config_path, issues);
    if (!config) {
        ReportIssues(err, config_path, issues);
        ReportRefused(err, config_path, issues);
        return 2;
    }
    bool attention = false;
    out << "microcare " << MICROCARE_VERSION << "\n";

    // The pack on disk, hashed as a start or a reload would; a running service that has not
    // been reloaded since the file changed shows its own at /readyz.
    const std::string pack_path = RulePackPath(config->rules_path);
    fhir::IssueList pack_issues;
    if (auto pack = LoadRulePackFile(pack_path, pack_issues)) {
        out << "rule pack: " << pack->id << " " << pack->version << " sha256 " << pack->sha256
            << " (" << pack_path << "; the running service's own is at /readyz)\n";
    } else {
        attention = true;
        out << "rule pack: " << pack_path << " does not validate (" << pack_issues.size()
            << " problem(s); `microcare rules check " << pack_path << "` lists them)\n";
    }

    // Opening would create an empty store: a service that never ran is said so instead.
    std::error_code missing;
    if (config->store.IsFile() && !std::filesystem::exists(config->store.path, missing)) {
        out << "jobs: no store yet at " << config->store.path << " (the service has not run)\n";
        out << "EHR reachability: not checked (status reads files only)\n";
        return attention ? 1 : 0;
    }
    StoreOptions read_only;  // status only looks: no migration, no write
    read_only.read_only = true;
    auto store = JobStore::Open(config->store.Location(), read_only);
    if (!store && store.error() == Error::kNotFound) {
        // A PostgreSQL database without MicroCare's schema: no service has started on it.
        out << "jobs: no store yet at " << RedactStoreLocation(config->store.Location())
            << " (the service has not run)\n";
        out << "EHR reachability: not checked (status reads files only)\n";
        return attention ? 1 : 0;
    }
    if (!store) {
        err << RedactStoreLocation(config->store.Location()) << ": cannot open the store ("
            << store.error().message() << ")\n";
        return 2;
    }
    out << "jobs:";
    for (JobState state :
         {JobState::kQueued, JobState::kRunning, JobState::kDone, JobState::kDead}) {
        auto count = (*store)->CountByState(state);
        out << " " << ToString(state) << " " << (count ? std::to_string(*count) : std::string("?"));
        if (state == JobState::kDead && count && *count > 0) attention = true;
    }
    out << "\n";
    JobFilter oldest;
    oldest.state = JobState::kQueued;
    oldest.limit = 1;
    auto waiting = (*store)->List(oldest);
    if (waiting && !waiting->empty()) {
        const Job& job = waiting->front();
        out << "oldest waiting job: " << job.id << ", queued "
            << fhir::FormatInstant(job.created_at, 0) << ", next attempt "
            << fhir::FormatInstant(job.next_attempt_at, 0) << ", attempts " << job.attempts << "\n";
    } else {
        out << "oldest waiting job: none\n";
    }
    // The dead letters themselves, newest first: what needs a person, and why.
    JobFilter dead;
    dead.state = JobState::kDead;
    dead.limit = 5;
    dead.newest_first = true;
    if (auto letters = (*store)->List(dead); letters && !letters->empty()) {
        out << "dead letters (newest " << letters->size()
            << "; `microcare jobs list --state dead` lists all):\n";
        for (const Job& job : *letters) {
            out << "  " << job.id << " " << (job.encounter.empty() ? "-" : job.encounter) << " "
                << fhir::FormatInstant(job.updated_at, 0) << " " << job.last_error << "\n";
        }
    }
    // Where polling stands: an operator sees at once whether the cursor still moves.
    if (config->poll.enabled) {
        auto cursor = (*store)->ReadPollCursor(std::string(kEncounterPollName));
        if (cursor && *cursor) {
            out << "poll cursor (encounters): updated after "
                << fhir::FormatInstant((*cursor)->high_water, 0) << " journaled, since "
                << fhir::FormatInstant((*cursor)->floor, 0) << "\n";
        } else {
            out << "poll cursor (encounters): none yet (no poll has run)\n";
        }
    }
    (*store)->Close();

    AuditArgs audit;
    audit.config_path = config_path;
    const bool in_database = !config->audit.database.empty();
    if (!in_database && !std::filesystem::exists(config->audit.path, missing)) {
        out << "audit trail: none yet at " << config->audit.path << "\n";
    } else if (auto trail = ResolveTrail(audit, err)) {
        const AuditReport report = VerifyTrail(*trail);
        if (report.intact()) {
            out << "audit trail: intact, " << report.records << " record(s) in "
                << (in_database ? "the store's database"
                                : std::to_string(report.files.size()) + " file(s)")
                << ", head seq " << report.head_seq << "\n";
        } else {
            attention = true;
            out << "audit trail: " << report.problems.size()
                << " problem(s); `microcare audit verify --config " << config_path
                << "` names them\n";
        }
    } else {
        attention = true;
        out << "audit trail: cannot be read\n";
    }
    out << "EHR reachability: not checked (status reads files only)\n";
    return attention ? 1 : 0;
}

}  // namespace microcare::adapter
