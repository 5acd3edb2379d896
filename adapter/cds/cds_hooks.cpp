#include "adapter/cds/cds_hooks.hpp"

#include "fhir/json.hpp"

namespace microcare::adapter {

const std::vector<CdsServiceSpec>& CdsServices() {
    static const std::vector<CdsServiceSpec> kServices = {
        {CdsHook::kAppointmentBook, "appointment-book", "microcare-appointment-book",
         "MicroCare: microneedling contraindications when booking",
         "Checks a proposed microneedling appointment against the clinic's contraindication "
         "rules, measured from the appointment's start, and shows the aftercare plan."},
        {CdsHook::kOrderSelect, "order-select", "microcare-order-select",
         "MicroCare: microneedling contraindications when ordering",
         "Checks a selected microneedling order against the clinic's contraindication rules."},
        {CdsHook::kOrderSign, "order-sign", "microcare-order-sign",
         "MicroCare: microneedling contraindications before signing",
         "Checks draft microneedling orders before they are signed; on an absolute "
         "contraindication it suggests removing the order."},
        {CdsHook::kEncounterStart, "encounter-start", "microcare-encounter-start",
         "MicroCare: microneedling contraindications at the start of the visit",
         "Checks a microneedling encounter as it starts, before the needle touches the skin."},
    };
    return kServices;
}

const CdsServiceSpec* FindCdsService(std::string_view id) {
    for (const CdsServiceSpec& spec : CdsServices()) {
        if (spec.id == id) return &spec;
    }
    return nullptr;
}

std::vector<PrefetchTemplate> PrefetchTemplates(CdsHook hook) {
    // As adapter/service/record_fetcher.cpp reads a record for the worker, so that a card and
    // the later CarePlan rest on the same resources.
    std::vector<PrefetchTemplate> out = {
        {"patient", "Patient/{{context.patientId}}", true},
        {"conditions", "Condition?patient=Patient/{{context.patientId}}&_count=200", false},
        {"allergies", "AllergyIntolerance?patient=Patient/{{context.patientId}}&_count=200", false},
        {"medicationRequests",
         "MedicationRequest?patient=Patient/{{context.patientId}}&_count=200"
         "&_include=MedicationRequest:medication",
         false},
        {"medicationStatements",
         "MedicationStatement?patient=Patient/{{context.patientId}}&_count=200"
         "&_include=MedicationStatement:medication",
         false},
        {"medicationAdministrations",
         "MedicationAdministration?patient=Patient/{{context.patientId}}&_count=200"
         "&_include=MedicationAdministration:medication",
         false},
        {"observations", "Observation?patient=Patient/{{context.patientId}}&_count=200", false},
        {"procedures", "Procedure?patient=Patient/{{context.patientId}}&_count=200", false},
        {"immunizations", "Immunization?patient=Patient/{{context.patientId}}&_count=200", false},
        {"encounters", "Encounter?patient=Patient/{{context.patientId}}&_count=200", false},
    };
    if (hook == CdsHook::kEncounterStart) {
        out.push_back({"encounter", "Encounter/{{context.encounterId}}", true});
    }
    return out;
}

std::string FillTemplate(std::string_view query, std::string_view patient_id,
                         std::string_view encounter_id) {
    std::string out;
    constexpr std::string_view kPatient = "{{context.patientId}}";
    constexpr std::string_view kEncounter = "{{context.encounterId}}";
    for (std::size_t i = 0; i < query.size();) {
        if (query.substr(i).starts_with(kPatient)) {
            out += patient_id;
            i += kPatient.size();
        } else if (query.substr(i).starts_with(kEncounter)) {
            out += encounter_id;
            i += kEncounter.size();
        } else {
            out += query[i++];
        }
    }
    return out;
}

std::string DiscoveryJson() {
    fhir::JsonWriter out;
    out.StartObject();
    out.Key("services");
    out.StartArray();
    for (const CdsServiceSpec& spec : CdsServices()) {
        out.StartObject();
        out.Field("hook", spec.hook_name);
        out.Field("id", spec.id);
        out.Field("title", spec.title);
        out.Field("description", spec.description);
        out.Field("usageRequirements",
                  "Signed JWTs from a configured issuer (RS384 or ES384). Send the prefetch, or "
                  "fhirServer (one trusted for your issuer) with fhirAuthorization granting read "
                  "access to the patient's record.");
        out.Key("prefetch");
        out.StartObject();
        for (const PrefetchTemplate& t : PrefetchTemplates(spec.hook)) out.Field(t.key, t.query);
        out.EndObject();
        out.EndObject();
    }
    out.EndArray();
    out.EndObject();
    return out.Take();
}

bool IsFhirId(std::string_view id) {
    if (id.empty() || id.size() > 64) return false;
    for (char c : id) {
        const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '.';
        if (!ok) return false;
    }
    return true;
}

}  // namespace microcare::adapter
