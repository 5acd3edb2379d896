#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/issues.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {

// Subscription notifications, as the EHR posts them to MicroCare and as it answers an
// `$events` replay: the server journals their events, the worker reads replays.

// A Subscription notification (R4 rest-hook or the R4B/R5-backport notification Bundle).
struct Notification {
    enum class Type { kHandshake, kHeartbeat, kEventNotification, kQueryStatus, kR4Resource };
    Type type = Type::kEventNotification;
    std::string subscription;
    std::optional<std::int64_t> events_since_start;  // heartbeats and handshakes carry it
    struct Event {
        std::int64_t number = 0;
        std::string encounter;  // empty for an empty payload: the worker must query the EHR
    };
    std::vector<Event> events;
    std::string r4_encounter;  // R4 style: the Encounter the notification is about
};

// `named_resource` is "Encounter/123" when the request path names it (R4 style with an empty
// body). Problems are reported to `issues`; nullopt when the notification cannot be read.
std::optional<Notification> ParseNotification(const fhir::JsonDocument* body,
                                              std::string_view named_resource,
                                              fhir::IssueList& issues);

std::string_view ToString(Notification::Type type);

}  // namespace microcare::adapter
