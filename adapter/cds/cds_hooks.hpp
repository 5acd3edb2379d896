#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace microcare::adapter {

// The hooks MicroCare serves, one CDS service each, and what each reads: a single home for the
// discovery document, the prefetch a request may carry and what is fetched when it does not.
enum class CdsHook { kAppointmentBook, kOrderSelect, kOrderSign, kEncounterStart };

struct CdsServiceSpec {
    CdsHook hook;
    std::string_view hook_name;  // "appointment-book"
    std::string_view id;         // "microcare-appointment-book"
    std::string_view title;
    std::string_view description;
};

const std::vector<CdsServiceSpec>& CdsServices();
const CdsServiceSpec* FindCdsService(std::string_view id);

// One prefetch template: its key, and the FHIR query with `{{context.patientId}}` (and
// `{{context.encounterId}}`) placeholders. `read`: a single resource, not a search.
struct PrefetchTemplate {
    std::string_view key;
    std::string_view query;
    bool read = false;
};
// The record the assessment reads: the same resources the worker fetches for an encounter.
std::vector<PrefetchTemplate> PrefetchTemplates(CdsHook hook);

// The template's query for this patient (and encounter); ids are checked by the caller.
std::string FillTemplate(std::string_view query, std::string_view patient_id,
                         std::string_view encounter_id);

// The discovery document: {"services": [...]}.
std::string DiscoveryJson();

// Whether `id` is a FHIR id ([A-Za-z0-9-.]{1,64}): what may be put into a query.
bool IsFhirId(std::string_view id);

}  // namespace microcare::adapter
