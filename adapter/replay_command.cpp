#include "adapter/replay_command.hpp"

#include <pwd.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <ostream>
#include <set>
#include <vector>

#include "adapter/async_util.hpp"
#include "adapter/audit/audit_log.hpp"
#include "adapter/client/rate_limited_ehr.hpp"
#include "adapter/configured_trail.hpp"
#include "adapter/issue_report.hpp"
#include "adapter/jobs/job_contract.hpp"
#include "adapter/rule_pack_file.hpp"
#include "adapter/service/ehr_connection.hpp"
#include "adapter/service/record_fetcher.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"
#include "adapter/time_bound.hpp"
#include "rules/outcome_diff.hpp"
#include "rules/record_assessment.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
using Kind = rules::OutcomeChange::Kind;

constexpr int kCannotRun = 1;
constexpr int kBadInput = 2;

// One encounter's comparison: the changes, or why there are none to show.
struct Compared {
    std::string encounter;
    std::vector<rules::OutcomeChange> changes;
    std::string failure;  // empty when it was compared; ids and statuses only
};

struct Totals {
    std::size_t compared = 0;
    std::size_t changed = 0;
    std::size_t failed = 0;
    std::map<Kind, std::size_t> changes;

    void Add(const Compared& c) {
        if (!c.failure.empty()) {
            ++failed;
            return;
        }
        ++compared;
        if (!c.changes.empty()) ++changed;
        for (const rules::OutcomeChange& change : c.changes) ++changes[change.kind];
    }
};

struct Window {
    std::optional<fhir::Instant> since;
    std::optional<fhir::Instant> until;
    std::string encounter;  // "Encounter/123", or empty for all
};

std::string EncounterReference(const std::string& text) {
    if (text.empty() || text.starts_with("Encounter/")) return text;
    return "Encounter/" + text;
}

// The encounters the service assessed: those of done assessment jobs that finished in the
// window, each once, in the order they were first assessed.
Result<std::vector<std::string>> AssessedEncounters(JobStore& store, const Window& window) {
    JobFilter filter;
    filter.state = JobState::kDone;
    filter.limit = std::numeric_limits<std::size_t>::max();
    auto jobs = store.List(filter);
    if (!jobs) return jobs.error();
    std::vector<std::string> encounters;
    std::set<std::string> seen;
    for (const Job& job : *jobs) {
        if (job.kind != kJobAssess || job.encounter.empty()) continue;
        if (window.since && job.updated_at < *window.since) continue;
        if (window.until && job.updated_at > *window.until) continue;
        if (!window.encounter.empty() && job.encounter != window.encounter) continue;
        if (seen.insert(job.encounter).second) encounters.push_back(job.encounter);
    }
    return encounters;
}

// Evaluates one record under both packs. Runs on the CPU pool, never on the I/O thread.
Compared Assess(const rules::RuleSet& in_force, const rules::RuleSet& next,
                rules::RecordDocuments documents, const std::string& encounter, fhir::Instant now) {
    Compared c{encounter, {}, {}};
    fhir::IssueList issues;
    auto run = rules::RecordAssessment::Run(in_force, std::move(documents),
                                            {encounter, "job.encounter"}, now, issues);
    if (!run) {
        c.failure = "the record cannot be assessed:";
        for (const fhir::Issue& issue : issues) {
            if (c.failure.size() < 400) c.failure += " " + fhir::FormatIssue(issue) + ";";
        }
        return c;
    }
    c.changes =
        rules::DiffOutcomes(in_force, run->assessment(), next, run->EvaluateUnder(next, now));
    return c;
}

// Reads the record once, as the worker does, and compares.
asio::awaitable<Compared> Compare(Ehr& ehr, asio::thread_pool& cpu, const rules::RuleSet& in_force,
                                  const rules::RuleSet& next, const std::string& encounter,
                                  fhir::Instant now) {
    Compared c{encounter, {}, {}};
    auto fetched = co_await FetchRecord(ehr, encounter);
    if (!fetched) {
        c.failure = "reading the record failed: " + fetched.error().message();
    } else if (fetched->refusal) {
        c.failure = "the EHR answered " + std::to_string(fetched->refusal->status) + " to " +
                    fetched->refused_request;
    } else if (!fetched->problem.empty()) {
        c.failure = "the record cannot be assessed: " + fetched->problem;
    }
    if (!c.failure.empty()) co_return c;
    rules::RecordDocuments documents = std::move(fetched->record->documents);
    co_return co_await Offload(
        cpu, [&] { return Assess(in_force, next, std::move(documents), encounter, now); });
}

// A line on stderr at most once a second: how many, how fast, how long still.
class Progress {
public:
    Progress(std::ostream& err, std::size_t total)
        : err_(err), total_(total), start_(std::chrono::steady_clock::now()), last_(start_) {}

    void Done(std::size_t done) {
        const auto now = std::chrono::steady_clock::now();
        if (now - last_ < std::chrono::seconds(1) && !(done == total_ && shown_)) return;
        last_ = now;
        shown_ = true;
        const double seconds = std::chrono::duration<double>(now - start_).count();
        const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
        err_ << "replay: " << done << "/" << total_ << " encounters, " << std::round(rate * 10) / 10
             << "/s";
        if (done < total_ && rate > 0) {
            const auto left = static_cast<long long>(static_cast<double>(total_ - done) / rate);
            err_ << ", about " << left / 60 << "m" << left % 60 << "s left";
        }
        err_ << "\n" << std::flush;
    }

private:
    std::ostream& err_;
    std::size_t total_;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_;
    bool shown_ = false;
};

asio::awaitable<void> CompareAll(Ehr& ehr, asio::thread_pool& cpu, const rules::RuleSet& in_force,
                                 const rules::RuleSet& next,
                                 const std::vector<std::string>& encounters, fhir::Instant now,
                                 std::ostream& out, std::ostream& err, Totals& totals,
                                 std::vector<std::string>& changed) {
    Progress progress(err, encounters.size());
    for (std::size_t i = 0; i < encounters.size(); ++i) {
        const Compared c = co_await Compare(ehr, cpu, in_force, next, encounters[i], now);
        totals.Add(c);
        if (!c.failure.empty()) {
            out << c.encounter << ": not compared: " << c.failure << "\n";
        } else if (!c.changes.empty()) {
            changed.push_back(c.encounter);
            out << c.encounter << ": " << c.changes.size() << " change"
                << (c.changes.size() == 1 ? "" : "s") << "\n";
            for (const rules::OutcomeChange& change : c.changes) {
                out << "  " << rules::Describe(change) << "\n";
            }
        }
        out << std::flush;
        progress.Done(i + 1);
    }
}

std::string Identity(const rules::RuleSet& pack) {
    return pack.id + " " + pack.version + " (sha256 " + pack.sha256 + ")";
}

void PrintTotals(std::ostream& out, const Totals& t) {
    auto n = [&t](Kind kind) {
        auto it = t.changes.find(kind);
        return it == t.changes.end() ? 0 : it->second;
    };
    out << "totals: " << t.compared + t.failed << " encounter(s), " << t.changed << " changed, "
        << t.compared - t.changed << " unchanged, " << t.failed << " not compared; findings "
        << n(Kind::kFindingAdded) << " added, " << n(Kind::kFindingRemoved) << " removed, "
        << n(Kind::kSeverityChanged) << " severity changed; activities " << n(Kind::kActivityAdded)
        << " added, " << n(Kind::kActivityRemoved) << " removed, " << n(Kind::kActivityChanged)
        << " changed; " << n(Kind::kApplies) << " no longer or newly assessed\n";
}

// Who ran it, for the audit trail: the login of the real user id, and the sudo caller.
std::string OsUser() {
    const uid_t uid = ::getuid();
    std::vector<char> buffer(16384);
    passwd entry{};
    passwd* found = nullptr;
    if (::getpwuid_r(uid, &entry, buffer.data(), buffer.size(), &found) == 0 && found != nullptr) {
        return found->pw_name;
    }
    return "uid " + std::to_string(uid);
}

struct Queued {
    std::size_t queued = 0;   // new jobs, and finished ones queued again
    std::size_t pending = 0;  // a re-assessment already waiting or running
};

// One re-assessment per changed encounter; a pending one is not queued twice, and one that has
// finished (under a pack that still differs) is queued again.
// `result` counts what was done before a failure, for the audit record.
Result<void> QueueReassessments(JobStore& store, const std::vector<std::string>& encounters,
                                const rules::RuleSet& next, TimePoint now, Queued& result) {
    for (const std::string& encounter : encounters) {
        auto enqueued = store.Enqueue(ReplayJob(encounter, next.sha256));
        if (!enqueued) return enqueued.error();
        if (enqueued->created) {
            ++result.queued;
            continue;
        }
        auto job = store.Get(enqueued->job_id);
        if (!job) return job.error();
        if (job->state == JobState::kQueued || job->state == JobState::kRunning) {
            ++result.pending;
            continue;
        }
        auto retried = store.Retry(job->id, now);
        if (!retried) return retried.error();
        ++result.queued;
    }
    return {};
}

}  // namespace

int RunRulesReplay(const ReplayArgs& args, std::ostream& out, std::ostream& err) {
    // Everything that can be refused is checked before the store, the trail or the EHR is
    // touched: a refusal changes nothing.
    fhir::IssueList config_issues;
    auto config = LoadServiceConfig(args.config_path, config_issues);
    ReportIssues(err, args.config_path, config_issues);
    if (!config) {
        ReportRefused(err, args.config_path, config_issues);
        return kBadInput;
    }
    bool bad = false;
    Window window;
    window.since = ParseTimeBound(args.since, "--since", false, err, bad);
    window.until = ParseTimeBound(args.until, "--until", true, err, bad);
    window.encounter = EncounterReference(args.encounter);
    fhir::Instant now = std::chrono::floor<std::chrono::milliseconds>(Clock::now());
    if (args.now) {
        auto parsed = ParseInstant(*args.now);
        if (!parsed) {
            err << "--now: \"" << *args.now
                << "\" is not a FHIR instant such as 2026-11-24T12:00:00Z\n";
            bad = true;
        } else {
            now = *parsed;
        }
    }
    if (!(args.rate > 0) || !std::isfinite(args.rate)) {
        err << "--rate: must be a number of requests per second above 0\n";
        bad = true;
    }
    auto next = CheckRulePackFile(args.rules_path, err);
    const std::string in_force_path = RulePackPath(config->rules_path);
    auto in_force = CheckRulePackFile(in_force_path, err);
    if (bad || !next || !in_force) return kBadInput;

    // --apply records what it did in the trail, which one process writes at a time: with the
    // service running it cannot, and nothing is queued. Opened first, so that a long read of
    // the EHR does not end in that refusal.
    std::unique_ptr<AuditLog> audit;
    if (args.apply) {
        std::string problem;
        auto opened = OpenConfiguredTrail(config->audit, {}, &problem);
        if (!opened) {
            err << "--apply: cannot write the audit trail: "
                << (problem.empty() ? opened.error().message() : problem)
                << "\n--apply: nothing was queued. The trail has one writer: stop the service "
                   "(systemctl stop microcare), run the replay with --apply, then start it\n";
            return kCannotRun;
        }
        audit = std::move(*opened);
    }

    // Opening would create an empty store: a service that never ran has assessed nothing.
    std::error_code missing;
    if (config->store.IsFile() && !std::filesystem::exists(config->store.path, missing)) {
        err << config->store.path << ": no store (the service has not run): nothing to replay\n";
        return kCannotRun;
    }
    auto store = JobStore::Open(config->store.Location());
    if (!store) {
        err << RedactStoreLocation(config->store.Location()) << ": cannot open the store ("
            << store.error().message() << ")\n";
        return kCannotRun;
    }
    auto encounters = AssessedEncounters(**store, window);
    if (!encounters) {
        err << "cannot list the assessed encounters: " << encounters.error().message() << "\n";
        (*store)->Close();
        return kCannotRun;
    }

    out << "replay: in force " << Identity(*in_force) << "\n"
        << "replay: new      " << Identity(*next) << "\n"
        << "replay: " << encounters->size() << " encounter(s) assessed"
        << (window.encounter.empty() ? "" : " (" + window.encounter + ")")
        << (args.since.empty() ? "" : " since " + args.since)
        << (args.until.empty() ? "" : " until " + args.until) << "\n";

    Totals totals;
    std::vector<std::string> changed;
    if (!encounters->empty()) {
        asio::io_context io;
        auto connection = EhrConnection::Open(io.get_executor(), config->ehr);
        if (!connection) {
            err << "cannot set up the connection to the EHR (" << connection.error().message()
                << ")\n";
            (*store)->Close();
            return kCannotRun;
        }
        RateLimitedEhr ehr((*connection)->ehr(), args.rate);
        asio::thread_pool cpu(1);
        auto done = asio::co_spawn(
            io, CompareAll(ehr, cpu, *in_force, *next, *encounters, now, out, err, totals, changed),
            asio::use_future);
        io.run();
        cpu.join();
        done.get();  // rethrows what the loop threw
    }
    PrintTotals(out, totals);

    int status = totals.failed > 0 ? kCannotRun : 0;
    if (args.apply) {
        Queued counts;
        auto queued =
            QueueReassessments(**store, changed, *next,
                               std::chrono::floor<std::chrono::milliseconds>(Clock::now()), counts);
        if (!queued) {
            err << "--apply: cannot queue the re-assessments: " << queued.error().message() << "\n";
            status = kCannotRun;
        }
        out << "queued " << counts.queued << " re-assessment(s); " << counts.pending
            << " already pending\n";
        if (counts.queued > 0) {
            out << "the service re-assesses them with the pack in force when it takes them: "
                   "put the new pack where rules.path points before it starts\n";
        }
        const std::string user = OsUser();
        const char* sudo_user = std::getenv("SUDO_USER");
        const std::string in_force_name = in_force->id + " " + in_force->version;
        const std::string next_name = next->id + " " + next->version;
        const std::string compared = std::to_string(totals.compared);
        const std::string changed_count = std::to_string(totals.changed);
        const std::string failed = std::to_string(totals.failed);
        const std::string queued_count = std::to_string(counts.queued);
        const std::string pending = std::to_string(counts.pending);
        auto audited = audit->Append("replay", {{"user", user},
                                                {"sudoUser", sudo_user != nullptr ? sudo_user : ""},
                                                {"pack", in_force_name},
                                                {"packSha256", in_force->sha256},
                                                {"newPack", next_name},
                                                {"newPackSha256", next->sha256},
                                                {"since", args.since},
                                                {"until", args.until},
                                                {"encounter", window.encounter},
                                                {"compared", compared},
                                                {"changed", changed_count},
                                                {"notCompared", failed},
                                                {"queued", queued_count},
                                                {"pending", pending}});
        if (!audited) {
            err << "--apply: cannot write the audit trail: " << audited.error().message() << "\n";
            status = kCannotRun;
        }
    }
    (*store)->Close();
    return status;
}

}  // namespace microcare::adapter
