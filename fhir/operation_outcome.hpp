#pragma once

#include <optional>
#include <string>
#include <vector>

#include "fhir/issues.hpp"
#include "fhir/json.hpp"

namespace microcare::fhir {

// Writes an R4 OperationOutcome listing every issue; each path goes into `expression`. An `id`
// is given when the outcome is an entry of a Bundle.
void WriteOperationOutcome(JsonWriter& out, const IssueList& issues, std::string_view id = {});
std::string OperationOutcomeJson(const IssueList& issues, bool pretty = false);

// One issue of an OperationOutcome someone else wrote, as a person reads it: `path` is the first
// `expression` (else `location`), `text` is `details.text`, else `diagnostics`. Missing parts
// are empty.
struct OutcomeIssue {
    std::string severity;
    std::string code;
    std::string path;
    std::string text;
};

// The issues of an OperationOutcome in JSON; nullopt when `json` is not one.
std::optional<std::vector<OutcomeIssue>> ReadOperationOutcome(const std::string& json);

}  // namespace microcare::fhir
