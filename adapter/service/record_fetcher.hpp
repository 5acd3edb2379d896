#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "adapter/client/fhir_client.hpp"

namespace microcare::adapter {

// What the EHR holds about the patient of one encounter, as one collection Bundle (JSON).
struct FetchedRecord {
    std::string bundle;
    std::string encounter;  // "Encounter/123"
    std::string patient;    // "Patient/9"
    std::size_t resources = 0;
};

// The outcome of a fetch: the record, or the EHR's refusal (a non-2xx answer), or a transport
// error in the Result.
struct FetchOutcome {
    std::optional<FetchedRecord> record;
    std::optional<HttpResponse> refusal;
    std::string refused_request;  // which request was refused, for the job's outcome
};

// Reads the Encounter, then the Patient and every part of the record rules look at, in
// parallel: Conditions, allergies, medication requests/statements/administrations (with their
// Medications), Observations, Procedures, Immunizations and the patient's other Encounters.
boost::asio::awaitable<Result<FetchOutcome>> FetchRecord(FhirClient& client,
                                                         const std::string& encounter);

}  // namespace microcare::adapter
