#include "adapter/service/record_fetcher.hpp"

#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "fhir/bundle.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

using namespace boost::asio::experimental::awaitable_operators;

bool Ok(const HttpResponse& response) { return response.status >= 200 && response.status < 300; }

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
    const std::string by_patient = "patient=" + patient + "&_count=200";
    auto [patient_response, conditions, allergies, requests, statements, administrations,
          observations, procedures, immunizations, encounters] =
        co_await (client.Get(patient) && client.SearchAll("Condition?" + by_patient) &&
                  client.SearchAll("AllergyIntolerance?" + by_patient) &&
                  client.SearchAll("MedicationRequest?" + by_patient +
                                   "&_include=MedicationRequest:medication") &&
                  client.SearchAll("MedicationStatement?" + by_patient +
                                   "&_include=MedicationStatement:medication") &&
                  client.SearchAll("MedicationAdministration?" + by_patient +
                                   "&_include=MedicationAdministration:medication") &&
                  client.SearchAll("Observation?" + by_patient) &&
                  client.SearchAll("Procedure?" + by_patient) &&
                  client.SearchAll("Immunization?" + by_patient) &&
                  client.SearchAll("Encounter?" + by_patient));
    if (!patient_response) co_return patient_response.error();
    if (!Ok(*patient_response)) {
        outcome.refusal = std::move(*patient_response);
        outcome.refused_request = "GET " + patient;
        co_return outcome;
    }
    FetchedRecord record;
    record.encounter = encounter;
    record.patient = patient;
    record.bundle = R"({"resourceType":"Bundle","type":"collection","entry":[)";
    bool first = true;
    Append(record.bundle, first, encounter_response->body);
    Append(record.bundle, first, patient_response->body);
    record.resources = 2;
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
