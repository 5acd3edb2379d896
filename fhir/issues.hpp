#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace microcare::fhir {

// FHIR OperationOutcome.issue.severity.
enum class IssueSeverity { kFatal, kError, kWarning, kInformation };

// One problem with the data, located by its JSON path (`Bundle.entry[3].resource.subject`).
// The `code` is from the FHIR issue-type value set (`structure`, `required`, `value`, `invalid`,
// `not-supported`, `not-found`, ...).
struct Issue {
    IssueSeverity severity = IssueSeverity::kError;
    std::string code;
    std::string path;
    std::string message;
};

// The sink that parsers, validators and the rules loader report to (google/fhir's ErrorHandler
// pattern): data problems are collected, not thrown, so that every one is reported at once.
class IssueList {
public:
    void Add(IssueSeverity severity, std::string_view code, std::string_view path,
             std::string_view message);
    void Error(std::string_view code, std::string_view path, std::string_view message) {
        Add(IssueSeverity::kError, code, path, message);
    }
    void Warning(std::string_view code, std::string_view path, std::string_view message) {
        Add(IssueSeverity::kWarning, code, path, message);
    }

    bool HasErrors() const;
    bool empty() const { return issues_.empty(); }
    std::size_t size() const { return issues_.size(); }
    const std::vector<Issue>& issues() const { return issues_; }
    auto begin() const { return issues_.begin(); }
    auto end() const { return issues_.end(); }

private:
    std::vector<Issue> issues_;
};

std::string_view ToString(IssueSeverity severity);

// `path: message` for the command line.
std::string FormatIssue(const Issue& issue);

}  // namespace microcare::fhir
