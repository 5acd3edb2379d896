#pragma once

#include <string>

#include "fhir/issues.hpp"
#include "fhir/json.hpp"

namespace microcare::fhir {

// Writes an R4 OperationOutcome listing every issue; each path goes into `expression`. An `id`
// is given when the outcome is an entry of a Bundle.
void WriteOperationOutcome(JsonWriter& out, const IssueList& issues, std::string_view id = {});
std::string OperationOutcomeJson(const IssueList& issues, bool pretty = false);

}  // namespace microcare::fhir
