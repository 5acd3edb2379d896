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

std::optional<std::vector<OutcomeIssue>> ReadOperationOutcome(const std::string& json) {
    IssueList ignored;
    auto doc = JsonDocument::Parse(json, ignored);
    if (!doc) return std::nullopt;
    const Node root = doc->Root();
    const Node type = root["resourceType"];
    if (!type.IsString() || type.String() != "OperationOutcome") return std::nullopt;
    auto text = [](Node node) {
        return node.IsString() ? std::string(node.String()) : std::string();
    };
    std::vector<OutcomeIssue> issues;
    const Node list = root["issue"];
    for (std::size_t i = 0; list.IsArray() && i < list.Size(); ++i) {
        const Node issue = list[i];
        OutcomeIssue out{text(issue["severity"]), text(issue["code"]), {}, {}};
        for (std::string_view key : {"expression", "location"}) {
            if (out.path.empty() && issue[key].IsArray()) out.path = text(issue[key][0]);
        }
        out.text = text(issue["details"]["text"]);
        if (out.text.empty()) out.text = text(issue["diagnostics"]);
        issues.push_back(std::move(out));
    }
    return issues;
}

}  // namespace microcare::fhir
