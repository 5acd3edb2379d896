#pragma once

#include "adapter/service_config.hpp"
#include "fhir/issues.hpp"

namespace microcare::adapter {

// `config check --connect`: reaches the EHR as `serve` would, through the same EhrConnection
// (TLS verified with ehr.caFile or the system's trust store, the host name checked, the client
// certificate shown): a SMART Backend Services token first when ehr.auth is smart-backend, then
// GET [base]/metadata, which must be a FHIR R4 CapabilityStatement. Each problem goes to
// `issues` with the JSON path of the setting to fix (`ehr.baseUrl`, `ehr.caFile`,
// `ehr.auth.tokenEndpoint`, ...) and what to do. Blocks until done; every step is bounded by
// ehr.connectTimeoutMs and ehr.requestTimeoutMs.
// With `poll` (polling configured), the poll's search is then run once for one encounter: an EHR
// that refuses it (a search parameter or `_sort` it does not support) is named at `poll.query`.
void ProbeEhr(const EhrSettings& settings, fhir::IssueList& issues,
              const PollSettings* poll = nullptr);

}  // namespace microcare::adapter
