#include "adapter/service/record_fetcher.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "fhir/bundle.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

// The reads of a record besides the Encounter, in the order the batch carries them.
std::vector<std::string> RecordQueries(const std::string& patient) {
    const std::string by_patient = "patient=" + patient + "&_count=200";
    return {
        patient,
        "Condition?" + by_patient,
        "AllergyIntolerance?" + by_patient,
        "MedicationRequest?" + by_patient + "&_include=MedicationRequest:medication",
        "MedicationStatement?" + by_patient + "&_include=MedicationStatement:medication",
        "MedicationAdministration?" + by_patient + "&_include=MedicationAdministration:medication",
        "Observation?" + by_patient,
        "Procedure?" + by_patient,
        "Immunization?" + by_patient,
        "Encounter?" + by_patient};
}

std::string BatchOf(const std::vector<std::string>& queries) {
    fhir::JsonWriter out;
    out.StartObject();
    out.Field("resourceType", "Bundle");
    out.Field("type", "batch");
    out.Key("entry");
    out.StartArray();
    for (const std::string& query : queries) {
        out.StartObject();
        out.Key("request");
        out.StartObject();
        out.Field("method", "GET");
        out.Field("url", query);
        out.EndObject();
        out.EndObject();
    }
    out.EndArray();
    out.EndObject();
    return out.Take();
}

// Whose record: an Encounter's subject, or the Patient among an Appointment's participants.
std::string PatientOf(fhir::Node resource) {
    if (resource["resourceType"].String() == "Encounter") {
        return fhir::TypeIdOf(resource["subject"]["reference"].String());
    }
    const fhir::Node participants = resource["participant"];
    for (std::size_t i = 0; i < participants.Size(); ++i) {
        std::string actor = fhir::TypeIdOf(participants[i]["actor"]["reference"].String());
        if (actor.starts_with("Patient/")) return actor;
    }
    return {};
}

FetchOutcome Refused(HttpResponse response, std::string request) {
    FetchOutcome outcome;
    outcome.refusal = std::move(response);
    outcome.refused_request = std::move(request);
    return outcome;
}

// Adds a search's resources to `resources` (the record's, or an AlsoRead answer's) and the
// pages that hold them to the record, which keeps them alive.
void Take(std::vector<fhir::Node>& resources, rules::RecordDocuments& record,
          SearchResult& search) {
    resources.insert(resources.end(), search.resources.begin(), search.resources.end());
    for (fhir::JsonDocument& page : search.pages) record.documents.push_back(std::move(page));
}

}  // namespace

boost::asio::awaitable<Result<FetchOutcome>> FetchRecord(Ehr& ehr, const std::string& encounter,
                                                         const AlsoRead& also) {
    auto encounter_response = co_await ehr.Get(encounter);
    if (!encounter_response) co_return encounter_response.error();
    if (Classify(encounter_response->status) != EhrAnswer::kSuccess) {
        co_return Refused(std::move(*encounter_response), "GET " + encounter);
    }
    fhir::IssueList issues;
    auto encounter_doc = fhir::JsonDocument::Parse(encounter_response->body, issues);
    const std::string_view type = std::string_view(encounter).substr(0, encounter.find('/'));
    if (!encounter_doc || encounter_doc->Root()["resourceType"].String() != type) {
        co_return Error::kBadResponse;
    }
    FetchOutcome outcome;
    const std::string patient = PatientOf(encounter_doc->Root());
    if (!patient.starts_with("Patient/")) {
        // Nothing to assess without a patient: the EHR's data, not a transient fault.
        outcome.problem = type == "Encounter"
                              ? "Encounter.subject: does not name a Patient on the EHR"
                              : "Appointment.participant: no actor is a Patient on the EHR";
        co_return outcome;
    }
    FetchedRecord record;
    record.encounter = encounter;
    record.patient = patient;
    record.documents.resources.push_back(encounter_doc->Root());
    record.documents.documents.push_back(std::move(*encounter_doc));

    // One round trip for the whole record where the EHR takes batches; separate requests in
    // parallel where it does not.
    const std::vector<std::string> queries = RecordQueries(patient);
    if (also) {
        record.also_queries = also(encounter, patient);
    }
    std::vector<std::string> batched = queries;
    batched.insert(batched.end(), record.also_queries.begin(), record.also_queries.end());
    auto batch = co_await ehr.Post("", BatchOf(batched));
    if (!batch) co_return batch.error();
    const EhrAnswer batch_answer = Classify(batch->status, /*optional_feature=*/true);
    if (batch_answer == EhrAnswer::kSuccess) {
        fhir::IssueList batch_issues;
        auto doc = fhir::JsonDocument::Parse(batch->body, batch_issues);
        fhir::Node entries = doc ? doc->Root()["entry"] : fhir::Node();
        if (!doc || doc->Root()["type"].String() != "batch-response" ||
            entries.Size() != batched.size()) {
            co_return Error::kBadResponse;
        }
        std::vector<SearchResult> also_found(record.also_queries.size());
        bool also_answered = true;
        for (std::size_t i = 0; i < batched.size(); ++i) {
            fhir::Node answer = entries[i]["resource"];
            const unsigned status = EntryStatus(entries[i]["response"]["status"].String());
            const bool asked_also = i >= queries.size();
            if (asked_also && Classify(status) != EhrAnswer::kSuccess) {
                also_answered = false;  // the caller reads it itself, and says what refused
                continue;
            }
            if (Classify(status) != EhrAnswer::kSuccess) {
                HttpResponse refusal;
                refusal.status = status;
                refusal.body = answer.Exists() ? fhir::Serialize(answer) : std::string();
                co_return Refused(std::move(refusal), "GET " + batched[i] + " (in a batch)");
            }
            SearchResult* found = asked_also ? &also_found[i - queries.size()] : nullptr;
            std::vector<fhir::Node>& resources =
                found != nullptr ? found->resources : record.documents.resources;
            if (i == 0) {
                record.documents.resources.push_back(answer);
                continue;
            }
            for (std::size_t e = 0; e < answer["entry"].Size(); ++e) {
                resources.push_back(answer["entry"][e]["resource"]);
            }
            // Later pages are read one after another.
            for (std::size_t l = 0; l < answer["link"].Size(); ++l) {
                if (answer["link"][l]["relation"].String() != "next") continue;
                auto rest = co_await ehr.SearchAll(std::string(answer["link"][l]["url"].String()));
                if (!rest) co_return rest.error();
                if (rest->failure) {
                    co_return Refused(std::move(*rest->failure),
                                      "GET " + batched[i] + " (next pages)");
                }
                Take(resources, record.documents, *rest);
            }
        }
        if (also_answered && !record.also_queries.empty()) record.also = std::move(also_found);
        record.documents.documents.push_back(std::move(*doc));
        outcome.record = std::move(record);
        co_return outcome;
    }
    // A 429 or 5xx is the EHR's trouble, not a missing feature.
    if (batch_answer != EhrAnswer::kUnsupported) co_return Refused(std::move(*batch), "POST batch");

    auto [patient_response, conditions, allergies, requests, statements, administrations,
          observations, procedures, immunizations, encounters] =
        co_await (ehr.Get(queries[0]) && ehr.SearchAll(queries[1]) && ehr.SearchAll(queries[2]) &&
                  ehr.SearchAll(queries[3]) && ehr.SearchAll(queries[4]) &&
                  ehr.SearchAll(queries[5]) && ehr.SearchAll(queries[6]) &&
                  ehr.SearchAll(queries[7]) && ehr.SearchAll(queries[8]) &&
                  ehr.SearchAll(queries[9]));
    if (!patient_response) co_return patient_response.error();
    if (Classify(patient_response->status) != EhrAnswer::kSuccess) {
        co_return Refused(std::move(*patient_response), "GET " + patient);
    }
    auto patient_doc = fhir::JsonDocument::Parse(patient_response->body, issues);
    if (!patient_doc) co_return Error::kBadResponse;
    record.documents.resources.push_back(patient_doc->Root());
    record.documents.documents.push_back(std::move(*patient_doc));
    std::size_t query = 1;
    for (auto* search : {&conditions, &allergies, &requests, &statements, &administrations,
                         &observations, &procedures, &immunizations, &encounters}) {
        if (!*search) co_return search->error();
        if ((*search)->failure) {
            co_return Refused(std::move(*(*search)->failure), "GET " + queries[query]);
        }
        Take(record.documents.resources, record.documents, **search);
        ++query;
    }
    outcome.record = std::move(record);
    co_return outcome;
}

}  // namespace microcare::adapter
