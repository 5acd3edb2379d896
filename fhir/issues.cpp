#include "fhir/issues.hpp"

#include <algorithm>

namespace microcare::fhir {

void IssueList::Add(IssueSeverity severity, std::string_view code, std::string_view path,
                    std::string_view message) {
    issues_.push_back(Issue{severity, std::string(code), std::string(path), std::string(message)});
}

bool IssueList::HasErrors() const {
    return std::any_of(issues_.begin(), issues_.end(), [](const Issue& issue) {
        return issue.severity == IssueSeverity::kError || issue.severity == IssueSeverity::kFatal;
    });
}

std::string_view ToString(IssueSeverity severity) {
    switch (severity) {
        case IssueSeverity::kFatal:
            return "fatal";
        case IssueSeverity::kError:
            return "error";
        case IssueSeverity::kWarning:
            return "warning";
        case IssueSeverity::kInformation:
            return "information";
    }
    return "error";
}

std::string FormatIssue(const Issue& issue) {
    std::string line(ToString(issue.severity));
    line += ": ";
    if (!issue.path.empty()) {
        line += issue.path;
        line += ": ";
    }
    line += issue.message;
    return line;
}

}  // namespace microcare::fhir
