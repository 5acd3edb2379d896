#include "fhir/patient_record.hpp"

#include <array>
#include <cmath>

namespace microcare::fhir {
namespace {

constexpr std::string_view kBadDate =
    "not a valid FHIR date/dateTime (YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss[.fff]+hh:mm)";

constexpr std::array<std::string_view, kResourceTypeCount> kTypeNames = {"Patient",
                                                                         "Encounter",
                                                                         "Condition",
                                                                         "AllergyIntolerance",
                                                                         "MedicationRequest",
                                                                         "MedicationStatement",
                                                                         "MedicationAdministration",
                                                                         "Procedure",
                                                                         "Observation",
                                                                         "Immunization"};

template <typename PathFn>
Concept ReadConceptAt(Node node, const PathFn& path, IssueList& issues) {
    Concept value;
    if (!node.Exists()) return value;
    if (!node.IsObject()) {
        issues.Error("structure", path(),
                     "expected a CodeableConcept object, found " + std::string(node.TypeName()));
        return value;
    }
    value.text = node["text"].String();
    Node codings = node["coding"];
    if (codings.Exists() && !codings.IsArray()) {
        issues.Error("structure", path() + ".coding", "expected an array");
        return value;
    }
    value.codings.reserve(codings.Size());
    for (std::size_t i = 0; i < codings.Size(); ++i) {
        Node coding = codings[i];
        if (!coding.IsObject()) {
            issues.Error("structure", path() + ".coding[" + std::to_string(i) + "]",
                         "expected a Coding object, found " + std::string(coding.TypeName()));
            continue;
        }
        value.codings.push_back(
            Coding{coding["system"].String(), coding["code"].String(), coding["display"].String()});
    }
    return value;
}

// Reads the elements of one resource, reporting problems under its path.
// Most resources of a record name the same patient the same way: each distinct reference
// (with the base it is relative to) is resolved once.
class IdentityCache {
public:
    IdentityCache(const BundleIndex& index, std::deque<std::string>& strings)
        : index_(index), strings_(strings) {}

    std::string_view Identity(std::string_view reference, const BundleEntry& from) {
        const std::string_view base = from.base;
        for (const Item& item : items_) {
            if (item.reference == reference && item.base == base) return item.identity;
        }
        if (items_.size() > 16) items_.erase(items_.begin());
        std::string_view identity = strings_.emplace_back(index_.Identity(reference, &from));
        items_.push_back(Item{reference, base, identity});
        return identity;
    }

private:
    struct Item {
        std::string_view reference;
        std::string_view base;
        std::string_view identity;
    };
    const BundleIndex& index_;
    std::deque<std::string>& strings_;
    std::vector<Item> items_;
};

class ResourceReader {
public:
    ResourceReader(const BundleIndex& index, IdentityCache& identities, const BundleEntry& entry,
                   IssueList& issues)
        : index_(index), identities_(identities), entry_(entry), issues_(issues) {}

    Node Get(std::string_view key) const { return entry_.resource[key]; }

    std::string PathOf(std::string_view element) const {
        return entry_.Path() + "." + std::string(element);
    }

    // A code-typed element (a JSON string).
    std::string_view Code(std::string_view element) {
        Node node = Get(element);
        if (node.Exists() && !node.IsString()) {
            TypeError(PathOf(element), "a string", node);
            return {};
        }
        return node.String();
    }

    Concept ConceptAt(std::string_view element) {
        return ReadConceptAt(
            Get(element), [&] { return PathOf(element); }, issues_);
    }

    std::vector<Concept> ConceptList(std::string_view element) {
        std::vector<Concept> result;
        Node list = Get(element);
        if (!list.Exists()) return result;
        if (!list.IsArray()) {
            TypeError(PathOf(element), "an array", list);
            return result;
        }
        for (std::size_t i = 0; i < list.Size(); ++i) {
            result.push_back(ReadConceptAt(
                list[i], [&] { return PathOf(element) + "[" + std::to_string(i) + "]"; }, issues_));
        }
        return result;
    }

    // The first coding's code of a status CodeableConcept (clinicalStatus, verificationStatus).
    std::string_view StatusConcept(std::string_view element) {
        Concept value = ConceptAt(element);
        for (const Coding& coding : value.codings) {
            if (!coding.code.empty()) return coding.code;
        }
        return {};
    }

    // `element` names where the date sits within the resource; it must outlive the record
    // (callers pass string literals).
    std::optional<DatedValue> Date(Node node, std::string_view element) {
        if (!node.Exists()) return std::nullopt;
        if (!node.IsString()) {
            TypeError(PathOf(element), "a date or dateTime string", node);
            return std::nullopt;
        }
        auto parsed = DateTime::Parse(node.String());
        if (!parsed) {
            // The value itself is not repeated: dates in a record are patient data.
            issues_.Error("value", PathOf(element), kBadDate);
            return std::nullopt;
        }
        return DatedValue{*parsed, std::chrono::milliseconds(0), element, false};
    }

    std::optional<DatedValue> Date(std::string_view element) { return Date(Get(element), element); }

    // `name` is the literal "element.part".
    std::optional<DatedValue> PeriodPart(std::string_view element, std::string_view part,
                                         std::string_view name) {
        Node period = Get(element);
        if (!period.Exists()) return std::nullopt;
        if (!period.IsObject()) {
            TypeError(PathOf(element), "a Period object", period);
            return std::nullopt;
        }
        return Date(period[part], name);
    }

    std::string_view Reference(std::string_view element) {
        Node reference = Get(element);
        if (!reference.Exists()) return {};
        if (!reference.IsObject()) {
            TypeError(PathOf(element), "a Reference object", reference);
            return {};
        }
        std::string_view target = reference["reference"].String();
        if (target.empty()) return {};
        return identities_.Identity(target, entry_);
    }

    // medicationCodeableConcept, or the code of the Medication that medicationReference names
    // (contained or in the record).
    Concept Medication() {
        if (Get("medicationCodeableConcept").Exists())
            return ConceptAt("medicationCodeableConcept");
        Node reference = Get("medicationReference");
        std::string_view target = reference["reference"].String();
        Node medication = BundleIndex::ResolveContained(entry_, target);
        const BundleEntry* resolved = nullptr;
        if (!medication.Exists()) {
            resolved = index_.Resolve(target, &entry_);
            if (resolved != nullptr) medication = resolved->resource;
        }
        if (medication["resourceType"].String() == "Medication") {
            return ReadConceptAt(
                medication["code"],
                [&] {
                    return resolved != nullptr ? resolved->Path() + ".code"
                                               : PathOf("medicationReference") + "(contained).code";
                },
                issues_);
        }
        // An unresolved reference still carries a display that text patterns can match.
        Concept value;
        value.text = reference["display"].String();
        return value;
    }

    std::optional<Quantity> QuantityAt(std::string_view element) {
        Node node = Get(element);
        if (!node.Exists()) return std::nullopt;
        if (!node.IsObject()) {
            TypeError(PathOf(element), "a Quantity object", node);
            return std::nullopt;
        }
        Node value = node["value"];
        if (!value.Exists()) return std::nullopt;
        auto number = value.Number();
        if (!number) {
            TypeError(PathOf(element) + ".value", "a number", value);
            return std::nullopt;
        }
        return Quantity{*number, value.NumberText(), node["comparator"].String(),
                        node["unit"].String(), node["code"].String()};
    }

    // Duration in milliseconds (`expectedSupplyDuration`): UCUM units of time.
    std::optional<std::chrono::milliseconds> DurationAt(Node node, const std::string& path) {
        if (!node.Exists()) return std::nullopt;
        auto value = node["value"].Number();
        std::string_view unit = node["code"].String();
        if (unit.empty()) unit = node["unit"].String();
        static constexpr std::pair<std::string_view, double> kUnits[] = {
            {"s", 1.0 / 86400}, {"min", 1.0 / 1440}, {"h", 1.0 / 24}, {"d", 1},
            {"day", 1},         {"days", 1},         {"wk", 7},       {"week", 7},
            {"weeks", 7},       {"mo", 30},          {"month", 30},   {"months", 30},
            {"a", 365},         {"year", 365},       {"years", 365}};
        for (const auto& [name, day_count] : kUnits) {
            if (value && unit == name && *value >= 0) {
                return std::chrono::milliseconds(
                    static_cast<long long>(std::llround(*value * day_count * 86400000.0)));
            }
        }
        issues_.Warning("value", path, "duration without a known unit of time; not used");
        return std::nullopt;
    }

    void Error(std::string_view code, const std::string& path, std::string_view message) {
        issues_.Error(code, path, message);
    }

    void TypeError(const std::string& path, std::string_view expected, Node found) {
        issues_.Error(
            "structure", path,
            "expected " + std::string(expected) + ", found " + std::string(found.TypeName()));
    }

    const BundleEntry& entry() const { return entry_; }

private:
    const BundleIndex& index_;
    IdentityCache& identities_;
    const BundleEntry& entry_;
    IssueList& issues_;
};

template <typename T>
std::optional<T> FirstOf(std::optional<T> a, std::optional<T> b) {
    return a ? a : b;
}

void ReadCondition(ResourceReader& in, ClinicalResource& out) {
    out.code = in.ConceptAt("code");
    out.subject = in.Reference("subject");
    out.verification_status = in.StatusConcept("verificationStatus");
    out.has_body_site = in.Get("bodySite").Size() > 0;
    auto onset = FirstOf(in.Date("onsetDateTime"),
                         in.PeriodPart("onsetPeriod", "start", "onsetPeriod.start"));
    auto recorded = in.Date("recordedDate");
    out.start = FirstOf(onset, recorded);
    auto abatement = FirstOf(in.Date("abatementDateTime"),
                             in.PeriodPart("abatementPeriod", "end", "abatementPeriod.end"));
    abatement =
        FirstOf(abatement, in.PeriodPart("abatementPeriod", "start", "abatementPeriod.start"));
    bool abated = abatement.has_value() || in.Get("abatementAge").Exists() ||
                  in.Get("abatementRange").Exists() || in.Get("abatementString").Exists() ||
                  in.Get("abatementBoolean").Bool().value_or(false);
    out.end = FirstOf(abatement, FirstOf(recorded, onset));
    out.status = in.StatusConcept("clinicalStatus");
    if (out.status.empty()) {
        out.status = abated ? "resolved" : "active";
        out.status_defaulted = true;
    }
}

void ReadAllergy(ResourceReader& in, ClinicalResource& out) {
    out.code = in.ConceptAt("code");
    out.subject = in.Reference("patient");
    out.verification_status = in.StatusConcept("verificationStatus");
    out.start = FirstOf(in.Date("onsetDateTime"), in.Date("recordedDate"));
    out.end = FirstOf(in.Date("lastOccurrence"), out.start);
    out.status = in.StatusConcept("clinicalStatus");
    if (out.status.empty()) {
        out.status = "active";
        out.status_defaulted = true;
    }
}

void ReadMedicationRequest(ResourceReader& in, ClinicalResource& out) {
    out.code = in.Medication();
    out.subject = in.Reference("subject");
    out.status = in.Code("status");
    auto authored = in.Date("authoredOn");
    out.start = authored;
    Node dispense = in.Get("dispenseRequest");
    if (auto validity_end =
            in.Date(dispense["validityPeriod"]["end"], "dispenseRequest.validityPeriod.end")) {
        out.end = validity_end;
        return;
    }
    if (!authored) return;
    out.end = authored;
    out.end->estimated = true;
    auto supply = in.DurationAt(dispense["expectedSupplyDuration"],
                                in.PathOf("dispenseRequest.expectedSupplyDuration"));
    if (supply) {
        long long repeats = 0;
        if (auto n = dispense["numberOfRepeatsAllowed"].Number(); n && *n > 0) {
            repeats = static_cast<long long>(*n);
        }
        out.end->plus = *supply * (1 + repeats);
        out.end->element = "authoredOn + expectedSupplyDuration x (1 + numberOfRepeatsAllowed)";
    }
}

void ReadMedicationStatement(ResourceReader& in, ClinicalResource& out) {
    out.code = in.Medication();
    out.subject = in.Reference("subject");
    out.status = in.Code("status");
    auto effective = in.Date("effectiveDateTime");
    auto asserted = in.Date("dateAsserted");
    out.start = FirstOf(
        FirstOf(in.PeriodPart("effectivePeriod", "start", "effectivePeriod.start"), effective),
        asserted);
    out.end =
        FirstOf(FirstOf(in.PeriodPart("effectivePeriod", "end", "effectivePeriod.end"), effective),
                asserted);
    if (!out.end) out.end = out.start;
}

void ReadMedicationAdministration(ResourceReader& in, ClinicalResource& out) {
    out.code = in.Medication();
    out.subject = in.Reference("subject");
    out.status = in.Code("status");
    auto effective = in.Date("effectiveDateTime");
    out.start =
        FirstOf(in.PeriodPart("effectivePeriod", "start", "effectivePeriod.start"), effective);
    out.end =
        FirstOf(FirstOf(in.PeriodPart("effectivePeriod", "end", "effectivePeriod.end"), effective),
                out.start);
}

void ReadProcedure(ResourceReader& in, ClinicalResource& out) {
    out.code = in.ConceptAt("code");
    out.subject = in.Reference("subject");
    out.status = in.Code("status");
    out.encounter = in.Reference("encounter");
    out.reasons = in.ConceptList("reasonCode");
    out.has_body_site = in.Get("bodySite").Size() > 0;
    auto performed = in.Date("performedDateTime");
    out.start =
        FirstOf(in.PeriodPart("performedPeriod", "start", "performedPeriod.start"), performed);
    out.end =
        FirstOf(FirstOf(in.PeriodPart("performedPeriod", "end", "performedPeriod.end"), performed),
                out.start);
}

void ReadObservation(ResourceReader& in, ClinicalResource& out) {
    out.code = in.ConceptAt("code");
    out.subject = in.Reference("subject");
    out.status = in.Code("status");
    auto effective = FirstOf(in.Date("effectiveDateTime"), in.Date("effectiveInstant"));
    auto issued = in.Date("issued");
    out.start = FirstOf(
        FirstOf(in.PeriodPart("effectivePeriod", "start", "effectivePeriod.start"), effective),
        issued);
    out.end =
        FirstOf(FirstOf(in.PeriodPart("effectivePeriod", "end", "effectivePeriod.end"), effective),
                out.start);
    if (in.Get("valueCodeableConcept").Exists())
        out.value_concept = in.ConceptAt("valueCodeableConcept");
    out.interpretation = in.ConceptList("interpretation");
    out.quantity = in.QuantityAt("valueQuantity");
}

void ReadImmunization(ResourceReader& in, ClinicalResource& out) {
    out.code = in.ConceptAt("vaccineCode");
    out.subject = in.Reference("patient");
    out.status = in.Code("status");
    out.start = in.Date("occurrenceDateTime");
    out.end = out.start;
}

void ReadEncounter(ResourceReader& in, ClinicalResource& out) {
    out.subject = in.Reference("subject");
    out.status = in.Code("status");
    out.kinds = in.ConceptList("type");
    if (in.Get("serviceType").Exists()) out.kinds.push_back(in.ConceptAt("serviceType"));
    out.reasons = in.ConceptList("reasonCode");
    out.start = in.PeriodPart("period", "start", "period.start");
    out.end = FirstOf(in.PeriodPart("period", "end", "period.end"), out.start);
}

void ReadPatient(ResourceReader& in, ClinicalResource& out) {
    out.subject = out.reference;
    auto birth = in.Date("birthDate");
    if (birth && birth->value.precision() != DatePrecision::kSecond) {
        out.birth_date = birth->value;
    } else if (birth) {
        in.Error("value", in.PathOf("birthDate"), "must be a date without a time");
    }
}

// A proposed Appointment: what is booked, and for when. Its patient is the participant whose
// actor is a Patient.
void ReadAppointment(ResourceReader& in, IdentityCache& identities, ClinicalResource& out) {
    out.status = in.Code("status");
    out.kinds = in.ConceptList("serviceType");
    for (Concept& c : in.ConceptList("serviceCategory")) out.kinds.push_back(std::move(c));
    if (in.Get("appointmentType").Exists()) out.kinds.push_back(in.ConceptAt("appointmentType"));
    out.reasons = in.ConceptList("reasonCode");
    out.start = in.Date("start");
    Node participants = in.Get("participant");
    for (std::size_t i = 0; i < participants.Size(); ++i) {
        std::string_view target = participants[i]["actor"]["reference"].String();
        if (target.empty()) continue;
        std::string_view identity = identities.Identity(target, in.entry());
        if (identity.starts_with("Patient/") || identity.find("/Patient/") != identity.npos) {
            out.subject = identity;
            break;
        }
    }
}

// A draft ServiceRequest: what is ordered, and for when (occurrence[x]).
void ReadServiceRequest(ResourceReader& in, ClinicalResource& out) {
    out.status = in.Code("status");
    out.subject = in.Reference("subject");
    if (in.Get("code").Exists()) out.kinds.push_back(in.ConceptAt("code"));
    out.reasons = in.ConceptList("reasonCode");
    out.start = FirstOf(in.Date("occurrenceDateTime"),
                        in.PeriodPart("occurrencePeriod", "start", "occurrencePeriod.start"));
}

}  // namespace

std::optional<ResourceType> ParseResourceType(std::string_view name) {
    for (std::size_t i = 0; i < kTypeNames.size(); ++i) {
        if (kTypeNames[i] == name) return static_cast<ResourceType>(i);
    }
    return std::nullopt;
}

std::string_view ToString(ResourceType type) { return kTypeNames[static_cast<std::size_t>(type)]; }

Concept ReadConcept(Node node, const std::string& path, IssueList& issues) {
    return ReadConceptAt(
        node, [&] { return path; }, issues);
}

PatientRecord ReadPatientRecord(const BundleIndex& index, IssueList& issues) {
    PatientRecord record;
    record.resources.reserve(index.entries().size());
    IdentityCache identities(index, record.strings);
    for (const BundleEntry& entry : index.entries()) {
        auto type = ParseResourceType(entry.resource_type);
        if (!type) continue;
        ClinicalResource resource;
        resource.type = *type;
        resource.entry = &entry;
        resource.reference = record.strings.emplace_back(BundleIndex::ReferenceTo(entry));
        ResourceReader in(index, identities, entry, issues);
        switch (*type) {
            case ResourceType::kPatient:
                ReadPatient(in, resource);
                break;
            case ResourceType::kEncounter:
                ReadEncounter(in, resource);
                break;
            case ResourceType::kCondition:
                ReadCondition(in, resource);
                break;
            case ResourceType::kAllergyIntolerance:
                ReadAllergy(in, resource);
                break;
            case ResourceType::kMedicationRequest:
                ReadMedicationRequest(in, resource);
                break;
            case ResourceType::kMedicationStatement:
                ReadMedicationStatement(in, resource);
                break;
            case ResourceType::kMedicationAdministration:
                ReadMedicationAdministration(in, resource);
                break;
            case ResourceType::kProcedure:
                ReadProcedure(in, resource);
                break;
            case ResourceType::kObservation:
                ReadObservation(in, resource);
                break;
            case ResourceType::kImmunization:
                ReadImmunization(in, resource);
                break;
        }
        record.resources.push_back(std::move(resource));
    }
    return record;
}

const ClinicalResource* ReadProposedTreatment(const BundleIndex& index, const BundleEntry& entry,
                                              std::string_view default_subject,
                                              PatientRecord& record, IssueList& issues) {
    IdentityCache identities(index, record.strings);
    ResourceReader in(index, identities, entry, issues);
    ClinicalResource resource;
    resource.type = ResourceType::kEncounter;
    resource.proposed = true;
    resource.entry = &entry;
    resource.reference = record.strings.emplace_back(BundleIndex::ReferenceTo(entry));
    if (entry.resource_type == "Appointment") {
        ReadAppointment(in, identities, resource);
    } else if (entry.resource_type == "ServiceRequest") {
        ReadServiceRequest(in, resource);
    } else if (entry.resource_type == "Encounter") {
        // An encounter that starts (encounter-start): assessed before it is finished.
        ReadEncounter(in, resource);
    } else {
        issues.Error("not-supported", entry.Path() + ".resourceType",
                     "expected an Appointment, a ServiceRequest or an Encounter");
        return nullptr;
    }
    if (resource.subject.empty() && !default_subject.empty()) {
        resource.subject = record.strings.emplace_back(default_subject);
    }
    resource.end = resource.start;
    record.resources.push_back(std::move(resource));
    return &record.resources.back();
}

}  // namespace microcare::fhir
