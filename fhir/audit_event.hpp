#pragma once

#include <string>
#include <string_view>

#include "fhir/date_time.hpp"
#include "fhir/json.hpp"

namespace microcare::fhir {

// One write MicroCare made to the EHR, for an R4 AuditEvent after IHE Basic Audit Log Patterns
// (BALP), the "create" and "update" patterns of a RESTful interaction: MicroCare the client
// (requestor), the EHR the server, the written resource and the patient as entities. Ids only:
// nothing of the record's content.
struct AuditEventValue {
    bool update = false;   // false: create
    std::string what;      // the written resource: "CarePlan/12", or a transaction's urn:uuid
    std::string patient;   // "Patient/7"
    Instant recorded;      // when the write was made
    std::string software;  // "MicroCare 0.1.0": the client agent and the observer
    std::string ehr;       // the EHR's FHIR base URL: the server agent
    std::string pack;      // the rule pack's identity, "id version sha256"
    std::string job;       // MicroCare's job id, to find the same write in its own trail
    // Names this one write (the written entity's `name`): the same write gives the same key, so
    // a conditional create on `entity-name` records it once however often it is sent.
    std::string key;
};

// Writes the AuditEvent resource (an object, without fullUrl or request).
void WriteAuditEvent(JsonWriter& out, const AuditEventValue& value);

}  // namespace microcare::fhir
