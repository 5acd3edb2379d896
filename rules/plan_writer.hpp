#pragma once

#include <string>

#include "fhir/transaction_builder.hpp"
#include "rules/assessment.hpp"
#include "rules/rule_set.hpp"

namespace microcare::rules {

inline constexpr std::string_view kIdentifierSystem =
    "https://microcare.example/fhir/sid/generated";
inline constexpr std::string_view kRulePackTagSystem =
    "https://microcare.example/fhir/CodeSystem/rule-pack";
inline constexpr std::string_view kRuleCodeSystem =
    "https://microcare.example/fhir/CodeSystem/rule";

// What MicroCare writes for an assessment: one CarePlan, one DetectedIssue per finding and a
// Task when a clinician must review. Identifiers derive from the encounter, the pack id and the
// pack version only, so the same encounter assessed again with the same pack yields the same
// resources (and a conditional create makes no duplicate). Nothing applies: an empty value.
fhir::TransactionValue BuildTransaction(const RuleSet& rules, const Assessment& assessment,
                                        fhir::Instant now);

// The human summary for the command line (no names, no birth dates, no free text).
std::string Summarize(const RuleSet& rules, const Assessment& assessment);

}  // namespace microcare::rules
