#include "adapter/jobs_commands.hpp"

#include <filesystem>
#include <limits>
#include <ostream>

#include "adapter/admin_audit.hpp"
#include "adapter/audit/audit_query.hpp"
#include "adapter/issue_report.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"
#include "adapter/time_bound.hpp"
#include "fhir/date_time.hpp"
#include "fhir/operation_outcome.hpp"

namespace microcare::adapter {
namespace {

constexpr JobState kStates[] = {JobState::kQueued, JobState::kRunning, JobState::kDone,
                                JobState::kDead};

std::string Time(TimePoint t) { return fhir::FormatInstant(t, 0); }

// The store, and the configuration when --config names it (it also names the audit trail).
struct Target {
    std::string store_path;
    std::optional<ServiceConfig> config;
};

std::optional<Target> ResolveTarget(const JobsArgs& args, std::ostream& err) {
    Target target;
    if (!args.config_path.empty()) {
        fhir::IssueList issues;
        target.config = LoadServiceConfig(args.config_path, issues);
        if (!target.config) {
            ReportIssues(err, args.config_path, issues);
            ReportRefused(err, args.config_path, issues);
            return std::nullopt;
        }
        target.store_path = target.config->store.Location();
    }
    if (!args.store_path.empty()) target.store_path = args.store_path;
    if (target.store_path.empty()) {
        err << "name the store: --store PATH or --config FILE\n";
        return std::nullopt;
    }
    return target;
}

// Opens an existing store; SQLite would otherwise create an empty one where a path is
// mistyped, and the admin would read "no jobs" instead of learning the path is wrong.
std::unique_ptr<JobStore> OpenStore(const Target& target, bool read_only, std::ostream& err) {
    std::error_code error;
    if (!IsPostgresUrl(target.store_path) &&
        !std::filesystem::is_regular_file(target.store_path, error)) {
        err << target.store_path << ": no store here (check --store or store.path"
            << (std::filesystem::exists(target.store_path, error) ? "; it is not a file" : "")
            << ")\n";
        return nullptr;
    }
    StoreOptions options;
    options.read_only = read_only;
    auto store = JobStore::Open(target.store_path, options);
    if (!store) {
        err << RedactStoreLocation(target.store_path) << ": cannot open the store ("
            << store.error().message() << ")\n";
        return nullptr;
    }
    return std::move(*store);
}

std::optional<JobState> ParseState(const std::optional<std::string>& text, std::ostream& err,
                                   bool& bad) {
    if (!text) return std::nullopt;
    for (JobState state : kStates) {
        if (ToString(state) == *text) return state;
    }
    err << "--state: \"" << *text << "\" is not queued, running, done or dead\n";
    bad = true;
    return std::nullopt;
}

// The filters of list and retry; nullopt after saying what is wrong.
std::optional<JobFilter> ParseFilter(const JobsArgs& args, std::ostream& err) {
    JobFilter filter;
    bool bad = false;
    filter.state = ParseState(args.state, err, bad);
    filter.changed_since = ParseTimeBound(args.since, "--since", false, err, bad);
    if (!args.encounter.empty()) filter.encounter = TypedReference(args.encounter, "Encounter");
    if (bad) return std::nullopt;
    return filter;
}

AdminNote Note(std::string event) {
    AdminNote note;
    note.event = std::move(event);
    note.fields.emplace_back("user", OsUser());
    return note;
}

}  // namespace

int RunJobsList(const JobsArgs& args, std::ostream& out, std::ostream& err) {
    auto filter = ParseFilter(args, err);
    if (!filter) return 2;
    auto target = ResolveTarget(args, err);
    if (!target) return 2;
    auto store = OpenStore(*target, true, err);
    if (!store) return 2;
    filter->limit = args.limit;
    filter->newest_first = true;
    auto jobs = store->List(*filter);
    if (!jobs) {
        err << "cannot list jobs: " << jobs.error().message() << "\n";
        return 1;
    }
    out << "id\tstate\tattempts\tkind\tencounter\tupdated\tlast error\n";
    for (const Job& job : *jobs) {
        out << job.id << "\t" << ToString(job.state) << "\t" << job.attempts << "\t" << job.kind
            << "\t" << (job.encounter.empty() ? "-" : job.encounter) << "\t" << Time(job.updated_at)
            << "\t" << job.last_error << "\n";
    }
    // Of the whole store, so that a filtered or cut list still shows what else is there.
    out << "total:";
    const char* separator = " ";
    for (JobState state : kStates) {
        auto count = store->CountByState(state);
        out << separator << ToString(state) << " " << (count ? std::to_string(*count) : "?");
        separator = ", ";
    }
    out << "\n";
    return 0;
}

int RunJobsShow(const JobsArgs& args, std::ostream& out, std::ostream& err) {
    auto target = ResolveTarget(args, err);
    if (!target) return 2;
    auto store = OpenStore(*target, true, err);
    if (!store) return 2;
    auto job = store->Get(args.id);
    if (!job) {
        err << "job " << args.id << ": " << job.error().message() << "\n";
        return 2;
    }
    // The payload may hold patient data: shown to the admin who asked, never logged.
    out << "job " << job->id << " (" << ToString(job->state) << ")\n"
        << "kind: " << job->kind << "\n"
        << "trigger: " << job->trigger_key << "\n"
        << "encounter: " << (job->encounter.empty() ? "-" : job->encounter) << "\n"
        << "attempts: " << job->attempts << "\n"
        << "created: " << Time(job->created_at) << "\n"
        << "updated: " << Time(job->updated_at) << "\n"
        << "next attempt: " << Time(job->next_attempt_at) << "\n";
    if (job->lease_until) out << "lease until: " << Time(*job->lease_until) << "\n";
    out << "last error: " << (job->last_error.empty() ? "-" : job->last_error) << "\n";
    if (auto issues = fhir::ReadOperationOutcome(job->outcome)) {
        out << "outcome (OperationOutcome from the EHR):\n";
        auto or_dash = [](const std::string& text) { return text.empty() ? "-" : text; };
        for (const fhir::OutcomeIssue& issue : *issues) {
            out << "  " << or_dash(issue.severity) << " " << or_dash(issue.code) << " "
                << or_dash(issue.path) << ": " << issue.text << "\n";
        }
    } else {
        out << "outcome: " << (job->outcome.empty() ? "-" : job->outcome) << "\n";
    }
    out << "payload: " << job->payload << "\n";
    return 0;
}

int RunJobsRetry(const JobsArgs& args, std::ostream& out, std::ostream& err) {
    const bool bulk = args.state || !args.since.empty();
    if (bulk == !args.ids.empty()) {
        err << "name the jobs: ID... or --state done|dead [--since T], not both\n";
        return 2;
    }
    auto filter = ParseFilter(args, err);
    if (!filter) return 2;
    if (bulk && filter->state != JobState::kDone && filter->state != JobState::kDead) {
        err << "--state: a bulk retry takes done or dead jobs\n";
        return 2;
    }
    auto target = ResolveTarget(args, err);
    if (!target) return 2;
    auto store = OpenStore(*target, false, err);
    if (!store) return 2;

    AdminNote note = Note("jobs-retry");
    std::vector<std::int64_t> ids = args.ids;
    if (bulk) {
        filter->limit = std::numeric_limits<std::size_t>::max();
        auto jobs = store->List(*filter);
        if (!jobs) {
            err << "cannot list jobs: " << jobs.error().message() << "\n";
            return 1;
        }
        for (const Job& job : *jobs) ids.push_back(job.id);
        note.fields.emplace_back("state", *args.state);
        if (!args.since.empty()) note.fields.emplace_back("since", args.since);
    }
    auto retried = store->RetryJobs(ids, SystemNow(), std::move(note));
    if (!retried) {
        err << "cannot retry: " << retried.error().message() << "\n";
        return 1;
    }
    out << retried->size() << " job(s) queued again:";
    for (std::int64_t id : *retried) out << " " << id;
    out << "\n";
    if (!retried->empty())
        RecordAdminNotes(target->config ? &target->config->audit : nullptr, *store, out);
    // Named ids that were not retried: unknown, or not done or dead.
    int code = 0;
    for (std::int64_t id : args.ids) {
        if (std::find(retried->begin(), retried->end(), id) != retried->end()) continue;
        auto job = store->Get(id);
        err << "job " << id << ": "
            << (job ? "is " + std::string(ToString(job->state)) +
                          ", only done or dead jobs can be retried"
                    : job.error().message())
            << "\n";
        code = 2;
    }
    return code;
}

int RunStoreMigrate(const JobsArgs& args, std::ostream& out, std::ostream& err) {
    auto target = ResolveTarget(args, err);
    if (!target) return 2;
    const std::string shown = RedactStoreLocation(target->store_path);
    auto migrated = JobStore::Migrate(target->store_path);
    if (!migrated) {
        // Unreachable, refused, or of a newer schema than this release knows.
        err << shown << ": cannot migrate the store (" << migrated.error().message() << ")\n";
        return 1;
    }
    if (migrated->from == migrated->to) {
        out << shown << ": schema version " << migrated->to << ", up to date\n";
    } else {
        out << shown << ": schema version " << migrated->from << " -> " << migrated->to << "\n";
    }
    return 0;
}

int RunJobsPurge(const JobsArgs& args, std::ostream& out, std::ostream& err) {
    bool bad = false;
    auto before = ParseTimeBound(args.done_before, "--done-before", false, err, bad);
    if (bad) return 2;
    if (!before) {
        err << "--done-before: required (a FHIR date or instant): done jobs older than it go\n";
        return 2;
    }
    auto target = ResolveTarget(args, err);
    if (!target) return 2;
    auto store = OpenStore(*target, false, err);
    if (!store) return 2;
    AdminNote note = Note("jobs-purge");
    note.fields.emplace_back("doneBefore", Time(*before));
    auto purged = store->PurgeDone(*before, std::move(note));
    if (!purged) {
        err << "cannot purge: " << purged.error().message() << "\n";
        return 1;
    }
    out << *purged << " done job(s) purged (changed before " << Time(*before) << ")\n";
    RecordAdminNotes(target->config ? &target->config->audit : nullptr, *store, out);
    return 0;
}

}  // namespace microcare::adapter
