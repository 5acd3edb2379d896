#include "adapter/jobs/notification.hpp"

#include "fhir/bundle.hpp"
#include "fhir/ids.hpp"

namespace microcare::adapter {

using fhir::Node;

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
        n.events_since_start = fhir::NonNegativeInteger(view.since);
        if (!n.events_since_start) {
            issues.Error("value", "Bundle.entry[0].resource.eventsSinceSubscriptionStart",
                         "must be a non-negative whole number");
        }
    }
    fhir::IssueList index_issues;
    fhir::BundleIndex index(root, index_issues);
    for (const StatusView::Event& e : view.events) {
        auto number = fhir::NonNegativeInteger(e.number);
        if (!number) {
            issues.Error("required", e.path + ".eventNumber",
                         "missing or not a whole number: events are tracked by number");
            continue;
        }
        Notification::Event event;
        event.number = *number;
        if (!e.focus.empty())
            event.encounter = fhir::ServerReference(index, e.focus, nullptr, "Encounter");
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

}  // namespace microcare::adapter
