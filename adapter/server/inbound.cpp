#include "adapter/server/inbound.hpp"

#include "adapter/client/outbound_url.hpp"
#include "fhir/bundle.hpp"
#include "fhir/ids.hpp"
#include "fhir/operation_outcome.hpp"
#include "fhir/transaction_builder.hpp"

namespace microcare::adapter {
namespace {

using fhir::Node;

void WriteCodingOf(fhir::JsonWriter& out, Node header) {
    if (header["eventCoding"].IsObject()) {
        out.Key("eventCoding");
        out.Value(header["eventCoding"]);
    } else if (header["eventUri"].IsString()) {
        out.Field("eventUri", header["eventUri"].String());
    }
}

std::string ResponseMessage(Node request_bundle, Node header, const MessageOptions& options,
                            fhir::Instant now, std::string_view code,
                            const fhir::IssueList* outcome) {
    const std::string bundle_id(request_bundle["id"].String());
    const std::string response_id = fhir::DeterministicUuid("response|" + bundle_id);
    const std::string header_id = fhir::DeterministicUuid("response-header|" + bundle_id);
    const std::string outcome_id = fhir::DeterministicUuid("response-outcome|" + bundle_id);
    fhir::JsonWriter out;
    out.StartObject();
    out.Field("resourceType", "Bundle");
    out.Field("id", response_id);
    out.Field("type", "message");
    out.Field("timestamp", fhir::FormatInstant(now, 0));
    out.Key("entry");
    out.StartArray();
    out.StartObject();
    out.Field("fullUrl", "urn:uuid:" + header_id);
    out.Key("resource");
    out.StartObject();
    out.Field("resourceType", "MessageHeader");
    out.Field("id", header_id);
    WriteCodingOf(out, header);
    if (header["source"]["endpoint"].IsString()) {
        out.Key("destination");
        out.StartArray();
        out.StartObject();
        out.Field("endpoint", header["source"]["endpoint"].String());
        out.EndObject();
        out.EndArray();
    }
    out.Key("source");
    out.StartObject();
    out.Field("software", "MicroCare");
    out.Field("endpoint", options.endpoint_name);
    out.EndObject();
    out.Key("response");
    out.StartObject();
    out.Field("identifier", header["id"].String());
    out.Field("code", code);
    if (outcome != nullptr) {
        out.Key("details");
        out.StartObject();
        out.Field("reference", "urn:uuid:" + outcome_id);
        out.EndObject();
    }
    out.EndObject();
    out.EndObject();  // MessageHeader
    out.EndObject();  // entry
    if (outcome != nullptr) {
        out.StartObject();
        out.Field("fullUrl", "urn:uuid:" + outcome_id);
        out.Key("resource");
        fhir::WriteOperationOutcome(out, *outcome, outcome_id);
        out.EndObject();
    }
    out.EndArray();
    out.EndObject();
    return out.Take();
}

}  // namespace

std::optional<MessageTrigger> ParseProcessMessage(Node bundle, const MessageOptions& options,
                                                  fhir::Instant now, fhir::IssueList& issues) {
    if (bundle["resourceType"].String() != "Bundle") {
        issues.Error("invalid", "resourceType",
                     "$process-message takes a Bundle of type message, not " +
                         (bundle["resourceType"].IsString()
                              ? std::string(bundle["resourceType"].String())
                              : std::string("a JSON ") + std::string(bundle.TypeName())));
        return std::nullopt;
    }
    if (bundle["type"].String() != "message") {
        issues.Error("value", "Bundle.type", "must be \"message\"");
    }
    if (!fhir::IsFhirId(bundle["id"].String())) {
        issues.Error("required", "Bundle.id",
                     "missing or not a FHIR id: it identifies the message for re-sends");
    }
    Node header = bundle["entry"][0]["resource"];
    if (header["resourceType"].String() != "MessageHeader") {
        issues.Error("required", "Bundle.entry[0].resource",
                     "the first entry of a message must be its MessageHeader");
        return std::nullopt;
    }
    if (!fhir::IsFhirId(header["id"].String())) {
        issues.Error("required", "Bundle.entry[0].resource.id",
                     "missing or not a FHIR id: responses name it in response.identifier");
    }
    if (!header["eventCoding"].IsObject() && !header["eventUri"].IsString()) {
        issues.Error("required", "Bundle.entry[0].resource.event[x]", "missing");
    }
    Node focus = header["focus"];
    if (focus.Size() == 0) {
        issues.Error(
            "required", "Bundle.entry[0].resource.focus",
            "missing: the message must name the Encounter to assess (or the Appointment booked)");
    }
    if (issues.HasErrors()) return std::nullopt;

    fhir::IssueList index_issues;
    fhir::BundleIndex index(bundle, index_issues);
    const fhir::BundleEntry* header_entry = index.entries().empty() ? nullptr : &index.entries()[0];
    std::string encounter;
    for (std::size_t i = 0; i < focus.Size() && encounter.empty(); ++i) {
        encounter =
            fhir::ServerReference(index, focus[i]["reference"].String(), header_entry, "Encounter");
    }
    // A booking (no Encounter yet): the Appointment is screened before the visit.
    for (std::size_t i = 0; i < focus.Size() && encounter.empty(); ++i) {
        encounter = fhir::ServerReference(index, focus[i]["reference"].String(), header_entry,
                                          "Appointment");
    }
    MessageTrigger trigger;
    trigger.is_async = options.is_async;
    if (encounter.empty()) {
        // A well-formed message about something MicroCare does not assess can never succeed:
        // it gets a fatal-error response rather than being retried by the sender.
        fhir::IssueList outcome;
        outcome.Error("not-supported", "Bundle.entry[0].resource.focus",
                      "no focus is an Encounter or Appointment with an id on the EHR: "
                      "MicroCare assesses Encounters and screens booked Appointments");
        trigger.fatal = true;
        trigger.response = ResponseMessage(bundle, header, options, now, "fatal-error", &outcome);
        return trigger;
    }
    trigger.response = ResponseMessage(bundle, header, options, now, "ok", nullptr);

    std::string respond_to;
    if (options.is_async) {
        const bool from_query = !options.response_url.empty();
        const std::string_view where =
            from_query ? "response-url" : "Bundle.entry[0].resource.source.endpoint";
        const std::string_view requested = from_query ? std::string_view(options.response_url)
                                                      : header["source"]["endpoint"].String();
        auto destination = NormalHttpUrl(requested);
        if (!destination) {
            issues.Error("required", where,
                         "an asynchronous message needs response-url or a source endpoint that "
                         "is an absolute http(s) URL to send the response to");
            return std::nullopt;
        }
        if (!IsAllowed(*destination, options.allowed_response_urls)) {
            issues.Error("forbidden", where,
                         "MicroCare sends responses only to the URLs its configuration allows "
                         "(ehr.messageEndpoint, ehr.allowedResponseUrls)");
            return std::nullopt;
        }
        respond_to = std::move(*destination);
    }
    trigger.job = MessageJob(MessageRecord{std::string(bundle["id"].String()),
                                           std::string(header["id"].String()), trigger.response},
                             encounter, respond_to);
    return trigger;
}

std::string CapabilityStatementJson(const std::string& base_url, fhir::Instant now,
                                    const rules::PackIdentity& pack) {
    fhir::JsonWriter out;
    out.StartObject();
    out.Field("resourceType", "CapabilityStatement");
    out.Field("status", "active");
    out.Field("date", fhir::FormatInstant(now, 0));
    out.Field("kind", "instance");
    out.Key("extension");
    out.StartArray();
    out.StartObject();
    out.Field("url", kRulePackExtension);
    out.Key("extension");
    out.StartArray();
    auto part = [&out](std::string_view name, std::string_view value) {
        out.StartObject();
        out.Field("url", name);
        out.Field("valueString", value);
        out.EndObject();
    };
    part("id", pack.id);
    part("version", pack.version);
    part("sha256", pack.sha256);
    out.EndArray();
    out.EndObject();
    out.EndArray();
    out.Key("software");
    out.StartObject();
    out.Field("name", "MicroCare");
    out.EndObject();
    out.Key("implementation");
    out.StartObject();
    // software.version is MicroCare's own; the pack is named here, for people reading it.
    out.Field("description",
              "MicroCare microneedling contraindication and aftercare service; rule pack " +
                  pack.id + " " + pack.version + " (sha256 " + pack.sha256 + ")");
    out.Field("url", base_url);
    out.EndObject();
    out.Field("fhirVersion", "4.0.1");
    out.Key("format");
    out.StartArray();
    out.String("application/fhir+json");
    out.String("json");
    out.EndArray();
    out.Key("rest");
    out.StartArray();
    out.StartObject();
    out.Field("mode", "server");
    out.Field("documentation",
              "Subscription rest-hook notifications (R4 and the R4B/R5 backport) are accepted at " +
                  base_url + "/notifications.");
    out.Key("security");
    out.StartObject();
    out.Field("description", "Bearer token (Authorization header) or mutual TLS");
    out.EndObject();
    out.Key("operation");
    out.StartArray();
    out.StartObject();
    out.Field("name", "process-message");
    out.Field("definition",
              "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message");
    out.EndObject();
    out.EndArray();
    out.EndObject();
    out.EndArray();
    out.Key("messaging");
    out.StartArray();
    out.StartObject();
    out.Key("endpoint");
    out.StartArray();
    out.StartObject();
    out.Key("protocol");
    out.StartObject();
    out.Field("system", "http://terminology.hl7.org/CodeSystem/message-transport");
    out.Field("code", "http");
    out.EndObject();
    out.Field("address", base_url + "/$process-message");
    out.EndObject();
    out.EndArray();
    // Re-sent messages are recognised by Bundle.id and answered from the store.
    out.Key("reliableCache");
    out.Int(30 * 24 * 3600);
    out.Field("documentation",
              "Any event whose MessageHeader.focus is the microneedling Encounter; the response "
              "message is sent once the trigger is journaled (or later with ?async=true).");
    out.Key("supportedMessage");
    out.StartArray();
    out.StartObject();
    out.Field("mode", "receiver");
    out.Field("definition",
              "https://microcare.example/fhir/MessageDefinition/encounter-assessment");
    out.EndObject();
    out.EndArray();
    out.EndObject();
    out.EndArray();
    out.EndObject();
    return out.Take();
}

}  // namespace microcare::adapter
