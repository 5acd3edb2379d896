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

// Turns the pack's canonical content into its digest (lower-case hex SHA-256 in the service).
// A parameter because rules/ links no crypto library; without one, RuleSet::sha256 stays empty.
using ContentDigest = std::function<std::string(std::string_view canonical_content)>;

// Parses and validates a rule pack. Every problem is reported with its JSON path; a pack with
// any error yields nullopt, so a half-valid pack is never used.
//
// The canonical content that `digest` receives is the pack re-serialised as compact JSON, then,
// for each value-set file in the order the pack names them, a newline and that file re-serialised
// the same way. Whitespace and indentation therefore do not change the digest; any change of a
// key, value, member order or included file does. Compact JSON holds no raw newline, so the
// separator cannot be confused with content.
std::optional<RuleSet> LoadRuleSet(std::string_view json_text, const PackFileReader& read_file,
                                   fhir::IssueList& issues, const ContentDigest& digest = nullptr);

}  // namespace microcare::rules
