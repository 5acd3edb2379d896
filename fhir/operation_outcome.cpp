#include "fhir/operation_outcome.hpp"

namespace microcare::fhir {

void WriteOperationOutcome(JsonWriter& out, const IssueList& issues, std::string_view id) {
    out.StartObject();
    out.Field("resourceType", "OperationOutcome");
    if (!id.empty()) out.Field("id", id);
    out.Key("issue");
    out.StartArray();
    for (const Issue& issue : issues) {
        out.StartObject();
        out.Field("severity", ToString(issue.severity));
        out.Field("code", issue.code.empty() ? "processing" : issue.code);
        out.Field("diagnostics", issue.message);
        if (!issue.path.empty()) {
            out.Key("expression");
            out.StartArray();
            out.String(issue.path);
            out.EndArray();
        }
        out.EndObject();
    }
    if (issues.empty()) {
        // An OperationOutcome needs at least one issue; "all is well" is the informational one.
        out.StartObject();
        out.Field("severity", "information");
        out.Field("code", "informational");
        out.Field("diagnostics", "ok");
        out.EndObject();
    }
    out.EndArray();
    out.EndObject();
}

std::string OperationOutcomeJson(const IssueList& issues, bool pretty) {
    JsonWriter out(pretty);
    WriteOperationOutcome(out, issues);
    return out.Take();
}

}  // namespace microcare::fhir
