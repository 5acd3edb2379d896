#include "adapter/server/outcome_answer.hpp"

#include "fhir/operation_outcome.hpp"

namespace microcare::adapter {

HttpResponseOut Outcome(unsigned status, const fhir::IssueList& issues) {
    HttpResponseOut out;
    out.status = status;
    out.body = fhir::OperationOutcomeJson(issues);
    return out;
}

HttpResponseOut Refusal(unsigned status, std::string_view code, const std::string& path,
                        const std::string& message) {
    fhir::IssueList issues;
    issues.Error(code, path, message);
    return Outcome(status, issues);
}

}  // namespace microcare::adapter
