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
// Task when a clinician must review. Identifiers derive from the encounter only (and the rule,
// for a DetectedIssue), never from the pack, so the same encounter assessed again, under this
// pack or another, names the same resources: a conditional create makes no duplicate, and
// ReviseTransaction (plan_revision) turns the value into the difference with what is on the
// EHR. Nothing applies: an empty value (everything to create).
fhir::TransactionValue BuildTransaction(const RuleSet& rules, const Assessment& assessment,
                                        fhir::Instant now);

// What a screening before a booked microneedling Appointment writes (pre-visit, from an
// assessment of the proposed treatment, windows measured from the appointment's start): one
// DetectedIssue per finding and, where a clinician must review, a Task whose focus is the
// Appointment, due at its start. No CarePlan: aftercare follows the treatment's Encounter.
// Identifiers derive from the appointment, so a re-screening revises what the last one wrote.
fhir::TransactionValue BuildPreVisitTransaction(const RuleSet& rules, const Assessment& assessment,
                                                fhir::Instant now);

// Nothing for the treatment: what retires everything written for it before (ReviseTransaction),
// e.g. when its appointment is cancelled.
fhir::TransactionValue BuildRetirement(const RuleSet& rules, std::string_view reference);

// How the identifier values (in kIdentifierSystem) of what MicroCare writes for a treatment
// begin, from its reference: "12:" for "Encounter/12", "appointment-7:" for "Appointment/7"
// (logical ids of different types may be equal). What the worker searches for with the record,
// before the assessment names it.
std::string IdentifierPrefix(std::string_view reference);

// One piece of evidence for people and DetectedIssue.detail: `Type/id (how it matched; status;
// the dated element and its date; ongoing; notes)`, dates in the encounter's offset.
std::string DescribeEvidence(const Evidence& e, int offset_minutes);

// The human summary for the command line (no names, no birth dates, no free text).
std::string Summarize(const RuleSet& rules, const Assessment& assessment);

}  // namespace microcare::rules
