#include "adapter/admin_commands.hpp"

#include <chrono>
#include <ostream>

#include "adapter/issue_report.hpp"
#include "adapter/service/service.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"
#include "fhir/date_time.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

std::string Time(TimePoint t) { return fhir::FormatInstant(t, 0); }

std::optional<std::string> StorePath(const JobsArgs& args, std::ostream& err) {
    if (!args.store_path.empty()) return args.store_path;
    if (args.config_path.empty()) {
        err << "name the store: --store PATH or --config FILE\n";
        return std::nullopt;
    }
    fhir::IssueList issues;
    auto config = LoadServiceConfig(args.config_path, issues);
    if (!config) {
        ReportIssues(err, args.config_path, issues);
        return std::nullopt;
    }
    return config->store.path;
}

std::unique_ptr<JobStore> OpenStore(const JobsArgs& args, std::ostream& err) {
    auto path = StorePath(args, err);
    if (!path) return nullptr;
    auto store = JobStore::Open(*path);
    if (!store) {
        err << *path << ": cannot open the store (" << store.error().message() << ")\n";
        return nullptr;
    }
    return std::move(*store);
}

}  // namespace

int RunServe(const std::string& config_path, std::ostream& err) {
    fhir::IssueList issues;
    auto config = LoadServiceConfig(config_path, issues);
    ReportIssues(err, config_path, issues);
    if (!config) return 2;
    auto service = Service::Create(*config);
    if (!service) {
        err << "microcare: cannot start (" << service.error().message() << "); see the log above\n";
        return 1;
    }
    (*service)->Start();
    (*service)->Wait(true);
    return 0;
}

int RunConfigCheck(const std::string& config_path, std::ostream& out, std::ostream& err) {
    fhir::IssueList issues;
    auto config = LoadServiceConfig(config_path, issues);
    ReportIssues(err, config_path, issues);
    if (!config) {
        ReportRefused(err, config_path, issues);
        return 2;
    }
    out << config_path << ": valid; listens on " << config->server.listen << ":"
        << config->server.port << (config->server.tls ? " (TLS)" : "") << ", EHR at "
        << config->ehr.base_url << ", store " << config->store.path << "\n";
    return 0;
}

int RunJobsList(const JobsArgs& args, std::ostream& out, std::ostream& err) {
    auto store = OpenStore(args, err);
    if (!store) return 2;
    JobFilter filter;
    filter.limit = args.limit;
    if (args.state) {
        for (JobState s :
             {JobState::kQueued, JobState::kRunning, JobState::kDone, JobState::kDead}) {
            if (ToString(s) == *args.state) filter.state = s;
        }
        if (!filter.state) {
            err << "--state: \"" << *args.state << "\" is not queued, running, done or dead\n";
            return 2;
        }
    }
    auto jobs = store->List(filter);
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
    return 0;
}

int RunJobsShow(const JobsArgs& args, std::ostream& out, std::ostream& err) {
    auto store = OpenStore(args, err);
    if (!store) return 2;
    auto job = store->Get(args.id);
    if (!job) {
        err << "job " << args.id << ": " << job.error().message() << "\n";
        return 2;
    }
    // The payload may hold patient data: shown to the admin who asked, never logged.
    fhir::JsonWriter w(true);
    w.StartObject();
    w.Key("id");
    w.Int(job->id);
    w.Field("state", ToString(job->state));
    w.Field("kind", job->kind);
    w.Field("trigger", job->trigger_key);
    w.Field("encounter", job->encounter);
    w.Key("attempts");
    w.Int(job->attempts);
    w.Field("created", Time(job->created_at));
    w.Field("updated", Time(job->updated_at));
    w.Field("nextAttempt", Time(job->next_attempt_at));
    if (job->lease_until) w.Field("leaseUntil", Time(*job->lease_until));
    w.Field("lastError", job->last_error);
    w.Field("outcome", job->outcome);
    w.Field("payload", job->payload);
    w.EndObject();
    out << w.View() << "\n";
    return 0;
}

int RunJobsRetry(const JobsArgs& args, std::ostream& out, std::ostream& err) {
    auto store = OpenStore(args, err);
    if (!store) return 2;
    auto now = std::chrono::floor<std::chrono::milliseconds>(Clock::now());
    auto retried = store->Retry(args.id, now);
    if (!retried) {
        err << "job " << args.id << ": " << retried.error().message()
            << (retried.error() == Error::kConflict ? " (only done or dead jobs can be retried)"
                                                    : "")
            << "\n";
        return 2;
    }
    out << "job " << args.id << " is queued again\n";
    return 0;
}

}  // namespace microcare::adapter
