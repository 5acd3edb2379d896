#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>

#include "adapter/client/ehr.hpp"
#include "rules/record_assessment.hpp"

namespace microcare::adapter {

// What the EHR holds about the patient of one encounter, parsed once, as its answers came.
struct FetchedRecord {
    rules::RecordDocuments documents;
    std::string encounter;  // "Encounter/123"
    std::string patient;    // "Patient/9"
};

// The outcome of a fetch: the record; or the EHR's answer that stopped it (a non-2xx, to be
// classified by the caller); or a problem with the EHR's data that no retry will fix. A
// transport error is the Result's error.
struct FetchOutcome {
    std::optional<FetchedRecord> record;
    std::optional<HttpResponse> refusal;
    std::string refused_request;  // which request was refused, for the job's outcome
    std::string problem;          // `path: reason`, ids only
};

// Reads the Encounter, then the Patient and every part of the record rules look at: in one
// batch where the EHR takes batches, else in parallel: Conditions, allergies, medication
// requests/statements/administrations (with their Medications), Observations, Procedures,
// Immunizations and the patient's other Encounters.
boost::asio::awaitable<Result<FetchOutcome>> FetchRecord(Ehr& ehr, const std::string& encounter);

}  // namespace microcare::adapter
