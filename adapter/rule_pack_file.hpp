#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "fhir/issues.hpp"
#include "rules/rule_set.hpp"

namespace microcare::adapter {

// The pack shipped with MicroCare: $MICROCARE_RULES, else the installed or source copy.
std::string DefaultRulePackPath();

// The pack a configuration (`rules.path`) or an option names; the shipped pack when empty.
std::string RulePackPath(const std::string& configured);

// Loads and validates a pack file; value-set files are read relative to its folder.
std::optional<rules::RuleSet> LoadRulePackFile(const std::string& path, fhir::IssueList& issues);

// What `rules check` does: loads a pack, printing every problem on `err` with its JSON path
// (and, when refused, the closing `refused (N problems)` line). Every command that takes a
// pack from an admin validates it here, so "valid" means one thing.
std::optional<rules::RuleSet> CheckRulePackFile(const std::string& path, std::ostream& err);

}  // namespace microcare::adapter
