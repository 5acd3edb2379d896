#include "adapter/issue_report.hpp"

#include <ostream>

namespace microcare::adapter {

void ReportIssues(std::ostream& err, const std::string& source, const fhir::IssueList& issues) {
    for (const fhir::Issue& issue : issues) {
        err << source << ": " << fhir::FormatIssue(issue) << "\n";
    }
}

void ReportRefused(std::ostream& err, const std::string& source, const fhir::IssueList& issues) {
    err << source << ": refused (" << issues.size() << " problem" << (issues.size() == 1 ? "" : "s")
        << ")\n";
}

}  // namespace microcare::adapter
