#include "adapter/service/record_fetcher.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "fhir/bundle.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

bool Ok(const HttpResponse& response) { return response.status >= 200 && response.status < 300; }

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

unsigned StatusOf(std::string_view text) {
    unsigned status = 0;
    for (char c : text) {
        if (c < '0' || c > '9') break;
        status = status * 10 + static_cast<unsigned>(c - '0');
    }
    return status;
}

void Append(std::string& bundle, bool& first, const std::string& resource) {
    bundle += first ? "{\"resource\":" : ",{\"resource\":";
    bundle += resource;
    bundle += '}';
    first = false;
}

}  // namespace

boost::asio::awaitable<Result<FetchOutcome>> FetchRecord(FhirClient& client,
                                                         const std::string& encounter) {
    FetchOutcome outcome;
    auto encounter_response = co_await client.Get(encounter);
    if (!encounter_response) co_return encounter_response.error();
    if (!Ok(*encounter_response)) {
        outcome.refusal = std::move(*encounter_response);
        outcome.refused_request = "GET " + encounter;
        co_return outcome;
    }
    fhir::IssueList issues;
    auto encounter_doc = fhir::JsonDocument::Parse(encounter_response->body, issues);
    if (!encounter_doc || encounter_doc->Root()["resourceType"].String() != "Encounter") {
        co_return Error::kBadResponse;
    }
    const std::string patient =
        fhir::TypeIdOf(encounter_doc->Root()["subject"]["reference"].String());
    if (!patient.starts_with("Patient/")) {
        // Nothing to assess without a patient: the EHR's data, not a transient fault.
        HttpResponse refusal;
        refusal.status = 422;
        refusal.body =
            R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"required","diagnostics":"Encounter.subject does not name a Patient","expression":["Encounter.subject"]}]})";
        outcome.refusal = std::move(refusal);
        outcome.refused_request = "GET " + encounter;
        co_return outcome;
    }
    FetchedRecord record;
    record.encounter = encounter;
    record.patient = patient;
    record.bundle = R"({"resourceType":"Bundle","type":"collection","entry":[)";
    bool first = true;
    Append(record.bundle, first, encounter_response->body);
    record.resources = 1;

    // One round trip for the whole record where the EHR takes batches; separate requests in
    // parallel where it does not.
    const std::vector<std::string> queries = RecordQueries(patient);
    auto batch = co_await client.Post("", BatchOf(queries));
    if (!batch) co_return batch.error();
    if (Ok(*batch)) {
        fhir::IssueList batch_issues;
        auto doc = fhir::JsonDocument::Parse(batch->body, batch_issues);
        fhir::Node entries = doc ? doc->Root()["entry"] : fhir::Node();
        if (!doc || doc->Root()["type"].String() != "batch-response" ||
            entries.Size() != queries.size()) {
            co_return Error::kBadResponse;
        }
        for (std::size_t i = 0; i < queries.size(); ++i) {
            fhir::Node answer = entries[i]["resource"];
            const unsigned status = StatusOf(entries[i]["response"]["status"].String());
            if (status < 200 || status >= 300) {
                HttpResponse refusal;
                refusal.status = status;
                refusal.body = answer.Exists() ? fhir::Serialize(answer) : std::string();
                outcome.refusal = std::move(refusal);
                outcome.refused_request = "GET " + queries[i] + " (in a batch)";
                co_return outcome;
            }
            if (i == 0) {
                Append(record.bundle, first, fhir::Serialize(answer));
                ++record.resources;
                continue;
            }
            for (std::size_t e = 0; e < answer["entry"].Size(); ++e) {
                Append(record.bundle, first, fhir::Serialize(answer["entry"][e]["resource"]));
                ++record.resources;
            }
            // Later pages are read one after another.
            for (std::size_t l = 0; l < answer["link"].Size(); ++l) {
                if (answer["link"][l]["relation"].String() != "next") continue;
                auto rest =
                    co_await client.SearchAll(std::string(answer["link"][l]["url"].String()));
                if (!rest) co_return rest.error();
                if (rest->failure) {
                    outcome.refusal = std::move(*rest->failure);
                    outcome.refused_request = "GET " + queries[i] + " (next pages)";
                    co_return outcome;
                }
                for (const std::string& resource : rest->resources) {
                    Append(record.bundle, first, resource);
                    ++record.resources;
                }
            }
        }
        record.bundle += "]}";
        outcome.record = std::move(record);
        co_return outcome;
    }
    if (batch->status != 400 && batch->status != 404 && batch->status != 405 &&
        batch->status != 415 && batch->status != 422 && batch->status != 501) {
        // Anything else (429, 5xx) is the EHR's trouble, not a missing feature.
        outcome.refusal = std::move(*batch);
        outcome.refused_request = "POST batch";
        co_return outcome;
    }

    auto [patient_response, conditions, allergies, requests, statements, administrations,
          observations, procedures, immunizations, encounters] =
        co_await (client.Get(queries[0]) && client.SearchAll(queries[1]) &&
                  client.SearchAll(queries[2]) && client.SearchAll(queries[3]) &&
                  client.SearchAll(queries[4]) && client.SearchAll(queries[5]) &&
                  client.SearchAll(queries[6]) && client.SearchAll(queries[7]) &&
                  client.SearchAll(queries[8]) && client.SearchAll(queries[9]));
    if (!patient_response) co_return patient_response.error();
    if (!Ok(*patient_response)) {
        outcome.refusal = std::move(*patient_response);
        outcome.refused_request = "GET " + patient;
        co_return outcome;
    }
    Append(record.bundle, first, patient_response->body);
    ++record.resources;
    for (auto* search : {&conditions, &allergies, &requests, &statements, &administrations,
                         &observations, &procedures, &immunizations, &encounters}) {
        if (!*search) co_return search->error();
        if ((*search)->failure) {
            outcome.refusal = std::move(*(*search)->failure);
            outcome.refused_request = "search";
            co_return outcome;
        }
        for (const std::string& resource : (*search)->resources) {
            Append(record.bundle, first, resource);
            ++record.resources;
        }
    }
    record.bundle += "]}";
    outcome.record = std::move(record);
    co_return outcome;
}

}  // namespace microcare::adapter
