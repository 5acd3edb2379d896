#pragma once

#include <string>
#include <string_view>

#include "adapter/server/http_server.hpp"
#include "fhir/issues.hpp"

namespace microcare::adapter {

// How every route (FHIR, CDS Hooks, admin) refuses: an OperationOutcome with its status.

// The issues as an OperationOutcome answer.
HttpResponseOut Outcome(unsigned status, const fhir::IssueList& issues);

// One error issue: its code, the FHIRPath or JSON path it is about (may be empty), the message.
HttpResponseOut Refusal(unsigned status, std::string_view code, const std::string& path,
                        const std::string& message);

}  // namespace microcare::adapter
