#pragma once

#include <iosfwd>
#include <string>

#include "fhir/issues.hpp"

namespace microcare::adapter {

// One line per problem on the command line: `source: error: path: message`.
void ReportIssues(std::ostream& err, const std::string& source, const fhir::IssueList& issues);

// The closing line of a refused file: `source: refused (3 problems)`.
void ReportRefused(std::ostream& err, const std::string& source, const fhir::IssueList& issues);

}  // namespace microcare::adapter
