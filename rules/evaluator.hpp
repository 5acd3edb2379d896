#pragma once

#include <vector>

#include "fhir/date_time.hpp"
#include "fhir/issues.hpp"
#include "fhir/patient_record.hpp"
#include "rules/assessment.hpp"
#include "rules/rule_set.hpp"

namespace microcare::rules {

// The microneedling encounters of a record, latest first.
std::vector<const fhir::ClinicalResource*> FindMicroneedlingEncounters(
    const RuleSet& rules, const fhir::PatientRecord& record);

// The record's latest Encounter of any kind (by period start), or nullptr.
const fhir::ClinicalResource* LatestEncounter(const fhir::PatientRecord& record);

// The record's encounter with this id or reference, or nullptr.
const fhir::ClinicalResource* FindEncounter(const fhir::PatientRecord& record,
                                            std::string_view id_or_reference);

// The pure evaluator: no I/O and no clock (`now` is only the fallback origin and the date of
// what is written). A non-microneedling encounter, or one that did not take place, gives an
// Assessment with applies == false and the reason.
Assessment Evaluate(const RuleSet& rules, const fhir::PatientRecord& record,
                    const fhir::ClinicalResource& encounter, fhir::Instant now);

}  // namespace microcare::rules
