#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/bundle.hpp"
#include "fhir/date_time.hpp"
#include "fhir/issues.hpp"
#include "fhir/json.hpp"

namespace microcare::fhir {

// The resource types MicroCare reads from a patient's record.
enum class ResourceType {
    kPatient,
    kEncounter,
    kCondition,
    kAllergyIntolerance,
    kMedicationRequest,
    kMedicationStatement,
    kMedicationAdministration,
    kProcedure,
    kObservation,
    kImmunization,
};
inline constexpr int kResourceTypeCount = 10;

std::optional<ResourceType> ParseResourceType(std::string_view name);
std::string_view ToString(ResourceType type);

// Views into the parsed document: a PatientRecord must not outlive its JsonDocument.
struct Coding {
    std::string_view system;
    std::string_view code;
    std::string_view display;
};

struct Concept {
    std::vector<Coding> codings;
    std::string_view text;
    bool empty() const { return codings.empty() && text.empty(); }
};

struct Quantity {
    double value = 0;
    std::string_view value_text;
    std::string_view comparator;
    std::string_view unit;
    std::string_view code;
};

// A date taken from a resource, with the element it came from. An estimated end of supply is
// a base date plus a supply duration.
struct DatedValue {
    DateTime value;
    std::chrono::milliseconds plus{0};
    std::string_view element;  // a literal: "abatementDateTime", "performedPeriod.end", ...
    bool estimated = false;

    Instant Earliest(int default_offset_minutes) const {
        return value.Earliest(default_offset_minutes) + plus;
    }
    Instant Latest(int default_offset_minutes) const {
        return value.Latest(default_offset_minutes) + plus;
    }
};

// One clinically relevant resource of the record, reduced to what rules look at.
struct ClinicalResource {
    ResourceType type = ResourceType::kCondition;
    const BundleEntry* entry = nullptr;
    // Views into the PatientRecord's own strings or the parsed document.
    std::string_view reference;  // how the record refers to it: "Condition/12" or "urn:uuid:..."
    std::string_view subject;    // identity of the patient it is about; empty when it names none
    Concept code;                // Condition/Procedure/Observation code, medication, vaccine
    std::string_view status;
    bool status_defaulted = false;  // a missing clinicalStatus read as active/resolved
    std::string_view verification_status;
    std::optional<DatedValue> start;  // onset, authored, effective/performed start
    std::optional<DatedValue> end;    // abatement, end of supply, effective/performed end
    bool has_body_site = false;

    // Observation
    std::optional<Concept> value_concept;
    std::vector<Concept> interpretation;
    std::optional<Quantity> quantity;

    // Encounter and Procedure
    std::vector<Concept> kinds;    // Encounter.type and serviceType
    std::vector<Concept> reasons;  // reasonCode
    std::string_view encounter;    // Procedure.encounter identity

    // Patient
    std::optional<DateTime> birth_date;

    // A treatment not yet given (a proposed Appointment or draft ServiceRequest, read by
    // ReadProposedTreatment) standing in for the encounter: it has no "took place" status.
    bool proposed = false;
};

struct PatientRecord {
    std::vector<ClinicalResource> resources;
    // The references and identities the resources point at (a deque: growing it never moves
    // them).
    std::deque<std::string> strings;
};

// Reads every resource of the types above from the record. Problems that make a resource
// unreadable (a malformed date, a coding that is not an object) are reported with their path.
PatientRecord ReadPatientRecord(const BundleIndex& index, IssueList& issues);

// Reads a proposed Appointment or ServiceRequest (or an Encounter about to start) of the record as
// the index event of an assessment (type kEncounter, `proposed` set), added to `record`:
// Appointment serviceType, appointmentType, serviceCategory and ServiceRequest code as its kinds,
// reasonCode as its reasons, Appointment.start or ServiceRequest.occurrence[x] as its start, its
// Patient (Appointment.participant.actor, ServiceRequest.subject) or else `default_subject` as its
// subject. nullptr, with the problem reported, when the entry is neither.
const ClinicalResource* ReadProposedTreatment(const BundleIndex& index, const BundleEntry& entry,
                                              std::string_view default_subject,
                                              PatientRecord& record, IssueList& issues);

// Reads a CodeableConcept; reports type errors at `path`.
Concept ReadConcept(Node node, const std::string& path, IssueList& issues);

}  // namespace microcare::fhir
