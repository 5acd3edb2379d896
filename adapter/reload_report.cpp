#include "adapter/reload_report.hpp"

#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

void Pack(fhir::JsonWriter& out, std::string_view key, const rules::PackIdentity& pack) {
    out.Key(key);
    out.StartObject();
    out.Field("id", pack.id);
    out.Field("version", pack.version);
    out.Field("sha256", pack.sha256);
    out.EndObject();
}

void Keys(fhir::JsonWriter& out, std::string_view key, const std::vector<std::string>& keys) {
    out.Key(key);
    out.StartArray();
    for (const std::string& k : keys) out.String(k);
    out.EndArray();
}

std::string Joined(const std::vector<std::string>& keys) {
    std::string out;
    for (const std::string& k : keys) out += (out.empty() ? "" : ", ") + k;
    return out;
}

std::string Name(const rules::PackIdentity& pack) {
    return pack.id + " " + pack.version + " (sha256 " + pack.sha256 + ")";
}

}  // namespace

std::string ReloadReport::Json() const {
    fhir::JsonWriter out;
    out.StartObject();
    out.Field("outcome", applied() ? "applied" : "refused");
    out.Field("trigger", trigger);
    Pack(out, "rulePack", pack);
    Pack(out, "previousRulePack", previous);
    out.Field("configuration", config_read ? "reread" : "not reread (started without a file)");
    Keys(out, "applied", changes.live);
    Keys(out, "restartNeeded", changes.restart_needed);
    out.Field("message", Summary());
    out.EndObject();
    return out.Take();
}

std::string ReloadReport::Summary() const {
    switch (outcome) {
        case Outcome::kApplied: {
            std::string text = "rule pack " + Name(pack) + " in force for jobs that start now";
            if (!changes.live.empty()) text += "; applied: " + Joined(changes.live);
            if (!changes.restart_needed.empty()) {
                text +=
                    "; changed but in force only after a restart (the old values stay "
                    "until then): " +
                    Joined(changes.restart_needed);
            }
            return text;
        }
        case Outcome::kRefused:
            return file + " refused with " + std::to_string(issues.size()) +
                   " problem(s); rule pack " + Name(pack) + " stays in force";
        case Outcome::kUnaudited:
            return "the audit trail cannot record the reload; rule pack " + Name(pack) +
                   " stays in force";
    }
    return {};
}

fhir::IssueList ReloadReport::RefusalIssues() const {
    fhir::IssueList out;
    for (const fhir::Issue& issue : issues) {
        out.Add(issue.severity, issue.code, issue.path,
                file.empty() ? issue.message : file + ": " + issue.message);
    }
    out.Add(fhir::IssueSeverity::kInformation, "informational", "", Summary());
    return out;
}

}  // namespace microcare::adapter
