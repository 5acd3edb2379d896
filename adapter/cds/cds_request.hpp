#pragma once

#include <optional>
#include <string>
#include <vector>

#include "adapter/cds/cds_hooks.hpp"
#include "fhir/issues.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {

// A CDS Hooks 2.0 request, checked: views into the parsed body.
struct HookRequest {
    std::string hook_instance;
    std::string fhir_server;   // in normal form; empty when not given
    std::string access_token;  // fhirAuthorization.access_token; never logged
    std::string patient_id;    // context.patientId (a FHIR id)
    std::string encounter_id;  // context.encounterId, if given
    fhir::Node prefetch;       // an object, or missing
    // What to assess: the proposed Appointments (appointment-book), the draft ServiceRequests
    // (order-select: the selected ones; order-sign: all of them); empty for encounter-start.
    std::vector<fhir::Node> proposed;
};

// Checks a hook request against the service it was sent to; every problem goes to `issues`
// with its JSON path (`context.appointments.entry[0].resource`), and nullopt comes back.
std::optional<HookRequest> ParseHookRequest(fhir::Node body, const CdsServiceSpec& service,
                                            fhir::IssueList& issues);

}  // namespace microcare::adapter
