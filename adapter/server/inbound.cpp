#include "adapter/server/inbound.hpp"

#include <charconv>

#include "adapter/client/outbound_url.hpp"
#include "fhir/bundle.hpp"
#include "fhir/ids.hpp"
#include "fhir/operation_outcome.hpp"
#include "fhir/transaction_builder.hpp"

namespace microcare::adapter {
namespace {

using fhir::Node;

std::optional<std::int64_t> ParseInt(Node node) {
    std::string_view text = node.IsString() ? node.String() : node.NumberText();
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) {
        return std::nullopt;
    }
    return value;
}

// The EHR reference of an Encounter named by `reference` from an entry of `index`: the
// resolved entry's Type/id, or the reference's own Type/id.
std::string EncounterReference(const fhir::BundleIndex& index, std::string_view reference,
                               const fhir::BundleEntry* from) {
    if (const fhir::BundleEntry* target = index.Resolve(reference, from)) {
        if (target->resource_type != "Encounter" || !fhir::IsFhirId(target->id)) return {};
        return "Encounter/" + std::string(target->id);
    }
    std::string type_id = fhir::TypeIdOf(reference);
    return type_id.starts_with("Encounter/") ? type_id : std::string();
}

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

std::string JobPayload::ToJson() const {
    fhir::JsonWriter out;
    out.StartObject();
    if (!encounter.empty()) out.Field("encounter", encounter);
    if (!respond_to.empty()) out.Field("respondTo", respond_to);
    if (!response.empty()) out.Field("response", response);
    if (!subscription.empty()) {
        out.Field("subscription", subscription);
        out.Key("fromEvent");
        out.Int(from_event);
        out.Key("toEvent");
        out.Int(to_event);
    }
    out.EndObject();
    return out.Take();
}

std::optional<JobPayload> JobPayload::FromJson(const std::string& json) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(json, issues);
    if (!doc || !doc->Root().IsObject()) return std::nullopt;
    Node root = doc->Root();
    JobPayload payload;
    payload.encounter = root["encounter"].String();
    payload.respond_to = root["respondTo"].String();
    payload.response = root["response"].String();
    payload.subscription = root["subscription"].String();
    payload.from_event = ParseInt(root["fromEvent"]).value_or(0);
    payload.to_event = ParseInt(root["toEvent"]).value_or(0);
    return payload;
}

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
        issues.Error("required", "Bundle.entry[0].resource.focus",
                     "missing: the message must name the Encounter to assess");
    }
    if (issues.HasErrors()) return std::nullopt;

    fhir::IssueList index_issues;
    fhir::BundleIndex index(bundle, index_issues);
    const fhir::BundleEntry* header_entry = index.entries().empty() ? nullptr : &index.entries()[0];
    std::string encounter;
    for (std::size_t i = 0; i < focus.Size() && encounter.empty(); ++i) {
        encounter = EncounterReference(index, focus[i]["reference"].String(), header_entry);
    }
    MessageTrigger trigger;
    trigger.is_async = options.is_async;
    if (encounter.empty()) {
        // A well-formed message about something MicroCare does not assess can never succeed:
        // it gets a fatal-error response rather than being retried by the sender.
        fhir::IssueList outcome;
        outcome.Error("not-supported", "Bundle.entry[0].resource.focus",
                      "no focus is an Encounter with an id on the EHR: MicroCare assesses "
                      "Encounters");
        trigger.fatal = true;
        trigger.response = ResponseMessage(bundle, header, options, now, "fatal-error", &outcome);
        return trigger;
    }
    trigger.response = ResponseMessage(bundle, header, options, now, "ok", nullptr);

    JobPayload payload;
    payload.encounter = encounter;
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
        payload.respond_to = std::move(*destination);
        payload.response = trigger.response;
    }
    const std::string bundle_id(bundle["id"].String());
    trigger.job.trigger_key = "message:" + bundle_id;
    trigger.job.encounter = encounter;
    trigger.job.kind = std::string(kJobAssess);
    trigger.job.payload = payload.ToJson();
    trigger.job.message =
        MessageRecord{bundle_id, std::string(header["id"].String()), trigger.response};
    return trigger;
}

namespace {

std::optional<Notification::Type> ParseType(std::string_view code) {
    if (code == "handshake") return Notification::Type::kHandshake;
    if (code == "heartbeat") return Notification::Type::kHeartbeat;
    if (code == "event-notification") return Notification::Type::kEventNotification;
    if (code == "query-status" || code == "query-event") return Notification::Type::kQueryStatus;
    return std::nullopt;
}

// The R4B SubscriptionStatus and the R4 backport's Parameters say the same things.
struct StatusView {
    std::string_view type;
    std::string_view subscription;
    Node since;
    struct Event {
        Node number;
        std::string_view focus;
        std::string path;
    };
    std::vector<Event> events;
};

StatusView ReadStatus(Node status) {
    StatusView view;
    if (status["resourceType"].String() == "SubscriptionStatus") {
        view.type = status["type"].String();
        view.subscription = status["subscription"]["reference"].String();
        view.since = status["eventsSinceSubscriptionStart"];
        Node events = status["notificationEvent"];
        for (std::size_t i = 0; i < events.Size(); ++i) {
            view.events.push_back(
                {events[i]["eventNumber"], events[i]["focus"]["reference"].String(),
                 "Bundle.entry[0].resource.notificationEvent[" + std::to_string(i) + "]"});
        }
        return view;
    }
    Node parameters = status["parameter"];
    for (std::size_t i = 0; i < parameters.Size(); ++i) {
        Node p = parameters[i];
        std::string_view name = p["name"].String();
        if (name == "type") view.type = p["valueCode"].String();
        if (name == "subscription") view.subscription = p["valueReference"]["reference"].String();
        if (name == "events-since-subscription-start") {
            view.since = p["valueString"].Exists() ? p["valueString"] : p["valueUnsignedInt"];
        }
        if (name == "notification-event") {
            StatusView::Event event;
            event.path = "Bundle.entry[0].resource.parameter[" + std::to_string(i) + "]";
            Node parts = p["part"];
            for (std::size_t j = 0; j < parts.Size(); ++j) {
                std::string_view part = parts[j]["name"].String();
                if (part == "event-number") {
                    event.number = parts[j]["valueString"].Exists() ? parts[j]["valueString"]
                                                                    : parts[j]["valueUnsignedInt"];
                }
                if (part == "focus") event.focus = parts[j]["valueReference"]["reference"].String();
            }
            view.events.push_back(std::move(event));
        }
    }
    return view;
}

}  // namespace

std::optional<Notification> ParseNotification(const fhir::JsonDocument* body,
                                              std::string_view named_resource,
                                              fhir::IssueList& issues) {
    Notification n;
    if (body == nullptr) {
        // R4 rest-hook with an empty payload: the request path names the resource.
        if (!fhir::TypeIdOf(named_resource).starts_with("Encounter/")) {
            issues.Error("required", "",
                         "an empty notification must name the Encounter in its path "
                         "([base]/notifications/Encounter/{id})");
            return std::nullopt;
        }
        n.type = Notification::Type::kR4Resource;
        n.r4_encounter = fhir::TypeIdOf(named_resource);
        return n;
    }
    Node root = body->Root();
    std::string_view type = root["resourceType"].String();
    if (type == "Encounter") {
        if (!fhir::IsFhirId(root["id"].String())) {
            issues.Error("required", "Encounter.id", "missing: the EHR's id of the Encounter");
            return std::nullopt;
        }
        n.type = Notification::Type::kR4Resource;
        n.r4_encounter = "Encounter/" + std::string(root["id"].String());
        return n;
    }
    if (type != "Bundle" || root["type"].String() != "history") {
        issues.Error("invalid", "resourceType",
                     "a notification is an Encounter (R4 rest-hook) or a Bundle of type history "
                     "(R4B/R5 backport)");
        return std::nullopt;
    }
    Node status = root["entry"][0]["resource"];
    std::string_view status_type = status["resourceType"].String();
    if (status_type != "SubscriptionStatus" && status_type != "Parameters") {
        issues.Error("required", "Bundle.entry[0].resource",
                     "the first entry of a notification is its SubscriptionStatus or Parameters");
        return std::nullopt;
    }
    StatusView view = ReadStatus(status);
    auto parsed_type = ParseType(view.type);
    if (!parsed_type) {
        issues.Error(
            "value", "Bundle.entry[0].resource.type",
            "must be handshake, heartbeat, event-notification, query-status or query-event");
        return std::nullopt;
    }
    n.type = *parsed_type;
    // The reference becomes a URL on the EHR when missed events are replayed
    // (`Subscription/{id}/$events`): only a Subscription with a plain id may go there.
    n.subscription = fhir::TypeIdOf(view.subscription);
    if (!n.subscription.starts_with("Subscription/")) {
        issues.Error("required", "Bundle.entry[0].resource.subscription",
                     view.subscription.empty()
                         ? "missing"
                         : "must reference a Subscription on the EHR (Subscription/{id})");
        return std::nullopt;
    }
    if (view.since.Exists()) {
        n.events_since_start = ParseInt(view.since);
        if (!n.events_since_start) {
            issues.Error("value", "Bundle.entry[0].resource.eventsSinceSubscriptionStart",
                         "must be a non-negative whole number");
        }
    }
    fhir::IssueList index_issues;
    fhir::BundleIndex index(root, index_issues);
    for (const StatusView::Event& e : view.events) {
        auto number = ParseInt(e.number);
        if (!number) {
            issues.Error("required", e.path + ".eventNumber",
                         "missing or not a whole number: events are tracked by number");
            continue;
        }
        Notification::Event event;
        event.number = *number;
        if (!e.focus.empty()) event.encounter = EncounterReference(index, e.focus, nullptr);
        n.events.push_back(std::move(event));
    }
    if (issues.HasErrors()) return std::nullopt;
    return n;
}

std::string_view ToString(Notification::Type type) {
    switch (type) {
        case Notification::Type::kHandshake:
            return "handshake";
        case Notification::Type::kHeartbeat:
            return "heartbeat";
        case Notification::Type::kEventNotification:
            return "event-notification";
        case Notification::Type::kQueryStatus:
            return "query-status";
        case Notification::Type::kR4Resource:
            return "r4-rest-hook";
    }
    return "event-notification";
}

std::string CapabilityStatementJson(const std::string& base_url, fhir::Instant now) {
    fhir::JsonWriter out;
    out.StartObject();
    out.Field("resourceType", "CapabilityStatement");
    out.Field("status", "active");
    out.Field("date", fhir::FormatInstant(now, 0));
    out.Field("kind", "instance");
    out.Key("software");
    out.StartObject();
    out.Field("name", "MicroCare");
    out.EndObject();
    out.Key("implementation");
    out.StartObject();
    out.Field("description", "MicroCare microneedling contraindication and aftercare service");
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
