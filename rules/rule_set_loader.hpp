#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "fhir/issues.hpp"
#include "rules/rule_set.hpp"

namespace microcare::rules {

// Reads a file named by the pack (a ValueSet), relative to the pack's folder; nullopt if it
// cannot be read. The loader itself does no I/O: the caller supplies this.
using PackFileReader = std::function<std::optional<std::string>(std::string_view relative_path)>;

// Parses and validates a rule pack. Every problem is reported with its JSON path; a pack with
// any error yields nullopt, so a half-valid pack is never used.
std::optional<RuleSet> LoadRuleSet(std::string_view json_text, const PackFileReader& read_file,
                                   fhir::IssueList& issues);

}  // namespace microcare::rules
