#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "rules/assessment.hpp"
#include "rules/rule_set.hpp"

namespace microcare::rules {

// One way two packs' conclusions about the same encounter differ.
struct OutcomeChange {
    enum class Kind {
        kApplies,          // the encounter is assessed under one pack and not the other
        kFindingAdded,     // a rule fires on a resource only under the second pack
        kFindingRemoved,   // ... only under the first
        kSeverityChanged,  // the rule fires on that resource under both, with another severity
        kActivityAdded,    // the plan schedules something only under the second pack
        kActivityRemoved,  // ... only under the first
        kActivityChanged,  // the same activity with another status, other dates or other text
    };
    Kind kind = Kind::kApplies;
    // What changed. A finding is named by its rule and its evidence resource
    // ("A8@MedicationStatement/ms-1"; the rule alone when it has no evidence); an activity by
    // what it is ("check", "next-session", "maintenance", "instruction:no-makeup").
    std::string subject;
    std::string before;  // severity, or "scheduled 2026-11-21T10:00:00Z to ..."; empty when added
    std::string after;   // empty when removed
};

// What would change for one encounter if `after_pack` replaced `before_pack`: the two
// assessments of the same record, encounter and time, compared finding by finding (per rule
// and evidence resource) and activity by activity. Empty when the outcome is the same. The
// order is stable: applicability, then findings, then activities, each sorted by subject.
std::vector<OutcomeChange> DiffOutcomes(const RuleSet& before_pack, const Assessment& before,
                                        const RuleSet& after_pack, const Assessment& after);

// One line for people: `+ finding A8@MedicationStatement/ms-1: absolute`,
// `~ finding A2@Condition/c-1: relative -> absolute`, `- activity maintenance: ...`.
std::string Describe(const OutcomeChange& change);

std::string_view ToString(OutcomeChange::Kind kind);

}  // namespace microcare::rules
