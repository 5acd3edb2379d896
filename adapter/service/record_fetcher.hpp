#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/client/ehr.hpp"
#include "rules/record_assessment.hpp"

namespace microcare::adapter {

// What the EHR holds about the patient of one encounter, parsed once, as its answers came.
struct FetchedRecord {
    rules::RecordDocuments documents;
    std::string encounter;  // "Encounter/123", or the "Appointment/7" screened
    std::string patient;    // "Patient/9"
    // The answers to the searches asked with the record (AlsoRead), in their order, viewing
    // into `documents`; nothing where they were not asked, not answered in the record's batch
    // (an EHR without batches) or refused there: the caller then reads them itself.
    std::vector<std::string> also_queries;
    std::optional<std::vector<SearchResult>> also;
};

// Further searches to send in the record's batch, made from the encounter's (or appointment's)
// reference and its patient ("Patient/9"): a round trip each saved where the EHR takes batches.
using AlsoRead =
    std::function<std::vector<std::string>(std::string_view reference, std::string_view patient)>;

// The outcome of a fetch: the record; or the EHR's answer that stopped it (a non-2xx, to be
// classified by the caller); or a problem with the EHR's data that no retry will fix. A
// transport error is the Result's error.
struct FetchOutcome {
    std::optional<FetchedRecord> record;
    std::optional<HttpResponse> refusal;
    std::string refused_request;  // which request was refused, for the job's outcome
    std::string problem;          // `path: reason`, ids only
};

// Reads the Encounter (or the Appointment booked: "Appointment/7", whose Patient participant
// is the patient), then the Patient and every part of the record rules look at: in one
// batch where the EHR takes batches, else in parallel: Conditions, allergies, medication
// requests/statements/administrations (with their Medications), Observations, Procedures,
// Immunizations and the patient's other Encounters; and what `also` asks for.
boost::asio::awaitable<Result<FetchOutcome>> FetchRecord(Ehr& ehr, const std::string& encounter,
                                                         const AlsoRead& also = {});

}  // namespace microcare::adapter
