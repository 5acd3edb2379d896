#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/date_time.hpp"
#include "fhir/issues.hpp"
#include "fhir/json.hpp"
#include "fhir/transaction_builder.hpp"

namespace microcare::fhir {

// One write MicroCare made to the EHR, for an R4 AuditEvent after IHE Basic Audit Log Patterns
// (BALP), the "create" and "update" patterns of a RESTful interaction: MicroCare the client
// (requestor), the EHR the server, the written resource and the patient as entities. Ids only:
// nothing of the record's content.
struct AuditEventValue {
    bool update = false;   // false: create
    std::string what;      // the written version: "CarePlan/12/_history/3"
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

// One version of a resource MicroCare wrote, and its patient.
struct WrittenVersion {
    std::string what;     // "CarePlan/12/_history/3"
    std::string patient;  // "Patient/7"
    bool update = false;  // false: the resource's first version (version ids need not be numbers)
};

// The version each entry of a transaction-response names (entry.response.location, absolute
// or relative, with its `_history`; else the location and the etag), in the entries' order,
// with what the request's entry was (TransactionValue::EntryWrites: one per entry). Nothing,
// with the problem in `issues`, when the response does not say what was written.
std::optional<std::vector<WrittenVersion>> WrittenVersions(
    Node transaction_response, const std::vector<TransactionValue::EntryWrite>& requested,
    IssueList& issues);

// The key naming the write of one version (the written entity's `name`): the version and a
// digest of fixed length, so that no key is the start of another (servers may match
// `entity-name` by prefix whatever the modifier).
std::string AuditEventKey(std::string_view what);

// A Bundle (`batch`, or `transaction` for an EHR without batches) of one AuditEvent per
// written version, each a conditional create on its key: posted again (a retry that cannot
// tell whether the first post landed), it records nothing twice. A version other than 1 was an
// `common` gives who, where, when, pack and job.
void WriteAuditEventBatch(JsonWriter& out, const AuditEventValue& common,
                          const std::vector<WrittenVersion>& written,
                          std::string_view bundle_type = "batch");

}  // namespace microcare::fhir
