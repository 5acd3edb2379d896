#pragma once

#include <optional>
#include <string>
#include <vector>

#include "fhir/date_time.hpp"
#include "fhir/patient_record.hpp"
#include "rules/rule_set.hpp"

namespace microcare::rules {

// Why one resource counts for a rule: which resource, what matched, which date made it count.
struct Evidence {
    enum class Match { kCode, kText, kAge };
    const fhir::ClinicalResource* resource = nullptr;
    Match match = Match::kCode;
    fhir::Coding coding;                     // the coding that matched, for Match::kCode
    bool ongoing = false;                    // counted by its status alone, not by a window
    const fhir::DatedValue* date = nullptr;  // the date the window was applied to, if any
    std::optional<Severity> cap;             // the most this evidence supports, when a cap applies
    std::vector<std::string_view> notes;     // literals and the pack's own texts
};

struct Finding {
    std::size_t rule = 0;  // index into RuleSet::rules
    Severity severity = Severity::kInfo;
    std::vector<Evidence> evidence;
    std::vector<std::string_view> notes;  // downgrades, caps, "confirm the treatment area"
};

struct PlannedActivity {
    enum class Kind { kCheck, kNextSession, kMaintenance, kInstruction };
    Kind kind = Kind::kCheck;
    CodingSpec code;
    std::string status;  // care-plan-activity-status
    std::string description;
    std::string instruction;  // kInstruction: the pack's instruction id, naming it in a replay
    fhir::Instant start;
    fhir::Instant end;
};

// What the rules concluded about one encounter. Pure data: plan_writer turns it into FHIR.
struct Assessment {
    bool applies = false;     // a microneedling encounter that took place
    std::string explanation;  // why it does not apply, when it does not
    const fhir::ClinicalResource* encounter = nullptr;
    const fhir::ClinicalResource* procedure = nullptr;  // the microneedling Procedure, if any
    std::string patient;

    fhir::Instant origin;  // windows are measured back from here
    int offset_minutes = 0;
    std::string origin_source;  // "Encounter.period.start", ...

    int session_number = 1;
    int series_length = 3;
    std::string indication;  // the matched series indication id, or empty

    std::vector<Finding> findings;
    std::vector<PlannedActivity> activities;

    // An absolute or relative finding: a clinician must review (a Task).
    bool NeedsReview() const;
    bool HasAbsolute() const;
};

}  // namespace microcare::rules
