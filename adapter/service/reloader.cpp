#include "adapter/service/reloader.hpp"

#include "adapter/log.hpp"
#include "adapter/rule_pack_file.hpp"

namespace microcare::adapter {
namespace {

std::string Joined(const std::vector<std::string>& keys) {
    std::string out;
    for (const std::string& k : keys) out += (out.empty() ? "" : ",") + k;
    return out;
}

// The problems for the audit record: paths and messages about the files, never patient data;
// cut so that a pack with hundreds of problems does not make a huge record.
std::string ProblemsLine(const fhir::IssueList& issues) {
    std::string out;
    for (const fhir::Issue& issue : issues) {
        if (issue.severity != fhir::IssueSeverity::kError &&
            issue.severity != fhir::IssueSeverity::kFatal)
            continue;
        if (out.size() > 2000) {
            out += "; ...";
            break;
        }
        out += (out.empty() ? "" : "; ") + fhir::FormatIssue(issue);
    }
    return out;
}

}  // namespace

Reloader::Reloader(std::string config_path, ServiceConfig running, RulePackInForce& pack,
                   AuditLog& audit, ApplyLive apply_live)
    : config_path_(std::move(config_path)),
      running_(std::move(running)),
      pack_(pack),
      audit_(audit),
      apply_live_(std::move(apply_live)) {}

ReloadReport Reloader::Reload(std::string_view trigger) {
    std::lock_guard lock(mutex_);
    ReloadReport report;
    report.trigger = std::string(trigger);
    report.previous = pack_.Snapshot()->Identity();
    report.pack = report.previous;

    // The same loaders as `config check` and `rules check`: one definition of "valid".
    std::optional<ServiceConfig> next = running_;
    if (!config_path_.empty()) {
        report.config_read = true;
        next = LoadServiceConfig(config_path_, report.issues);
        if (!next) report.file = config_path_;
    }
    std::optional<rules::RuleSet> loaded;
    if (next) {
        const std::string pack_path = RulePackPath(next->rules_path);
        loaded = LoadRulePackFile(pack_path, report.issues);
        if (!loaded) report.file = pack_path;
    }

    if (!loaded) {
        report.outcome = ReloadReport::Outcome::kRefused;
        for (const fhir::Issue& issue : report.issues) {
            Log::Error("reload refused: problem",
                       {{"file", report.file}, {"path", issue.path}, {"problem", issue.message}});
        }
        Log::Error("reload refused", {{"trigger", report.trigger}, {"summary", report.Summary()}});
        auto audited =
            audit_.Append("reload", {{"trigger", report.trigger},
                                     {"outcome", "refused"},
                                     {"file", report.file},
                                     {"problems", ProblemsLine(report.issues)},
                                     {"pack", report.pack.id + " " + report.pack.version},
                                     {"packSha256", report.pack.sha256}});
        if (!audited) {
            Log::Error("cannot write the audit trail", {{"error", audited.error().message()}});
        }
        return report;
    }

    const rules::PackIdentity next_pack = loaded->Identity();
    report.changes = CompareServiceConfigs(running_, *next);
    // Recorded before it takes effect: no change to the rules in force goes unaudited.
    auto audited = audit_.Append(
        "reload", {{"trigger", report.trigger},
                   {"outcome", "applied"},
                   {"pack", next_pack.id + " " + next_pack.version},
                   {"packSha256", next_pack.sha256},
                   {"previousPack", report.previous.id + " " + report.previous.version},
                   {"previousPackSha256", report.previous.sha256},
                   {"applied", Joined(report.changes.live)},
                   {"restartNeeded", Joined(report.changes.restart_needed)}});
    if (!audited) {
        report.outcome = ReloadReport::Outcome::kUnaudited;
        report.changes = {};
        Log::Error("reload not applied: cannot write the audit trail",
                   {{"trigger", report.trigger}, {"error", audited.error().message()}});
        return report;
    }

    pack_.Replace(std::make_shared<const rules::RuleSet>(std::move(*loaded)));
    running_ = WithLiveKeys(std::move(running_), *next);
    if (apply_live_) apply_live_(running_);
    report.outcome = ReloadReport::Outcome::kApplied;
    report.pack = next_pack;
    Log::Info("reload applied", {{"trigger", report.trigger},
                                 {"pack", next_pack.id},
                                 {"version", next_pack.version},
                                 {"sha256", next_pack.sha256},
                                 {"applied", Joined(report.changes.live)},
                                 {"restartNeeded", Joined(report.changes.restart_needed)}});
    if (!report.changes.restart_needed.empty()) {
        Log::Warning("configuration changed but needs a restart; the old values stay in force",
                     {{"keys", Joined(report.changes.restart_needed)}});
    }
    return report;
}

}  // namespace microcare::adapter
