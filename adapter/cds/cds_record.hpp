#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "adapter/cds/cds_request.hpp"
#include "adapter/cds/cds_settings.hpp"
#include "adapter/client/http_client.hpp"
#include "fhir/issues.hpp"
#include "rules/record_assessment.hpp"

namespace microcare::adapter {

// The patient's record for a hook, or why it cannot be had: 412 when part of it was neither
// prefetched nor can be read (no fhirServer, no token, or a fhirServer the issuer is not
// trusted for, which is then never contacted); 502 when the FHIR server failed; 400 for a
// prefetch that is not FHIR.
struct GatheredRecord {
    std::optional<rules::RecordDocuments> record;
    unsigned status = 200;
    fhir::IssueList issues;
    std::size_t fetched = 0;  // requests made to fhirServer
};

// `body` is the parsed request that `request` views into; it moves into the record, with the
// prefetched resources, the proposed ones, and what was read from fhirServer with the token.
boost::asio::awaitable<GatheredRecord> GatherRecord(fhir::JsonDocument body,
                                                    const HookRequest& request, CdsHook hook,
                                                    const CdsIssuer& issuer, HttpClient& http);

}  // namespace microcare::adapter
