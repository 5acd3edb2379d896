#pragma once

#include <optional>
#include <string>

#include "fhir/issues.hpp"
#include "rules/rule_set.hpp"

namespace microcare::adapter {

// The pack shipped with MicroCare: $MICROCARE_RULES, else the installed or source copy.
std::string DefaultRulePackPath();

// Loads and validates a pack file; value-set files are read relative to its folder.
std::optional<rules::RuleSet> LoadRulePackFile(const std::string& path, fhir::IssueList& issues);

}  // namespace microcare::adapter
