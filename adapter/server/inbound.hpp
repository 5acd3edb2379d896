#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "adapter/store/job_store.hpp"
#include "fhir/date_time.hpp"
#include "fhir/issues.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {

// What the worker is asked to do, as stored in Job::payload.
struct JobPayload {
    std::string encounter;     // "Encounter/123" on the EHR
    std::string respond_to;    // async $process-message: where the response message goes
    std::string response;      // that response message
    std::string subscription;  // "recover" jobs: the subscription and the missing events
    std::int64_t from_event = 0;
    std::int64_t to_event = 0;

    std::string ToJson() const;
    static std::optional<JobPayload> FromJson(const std::string& json);
};

inline constexpr std::string_view kJobAssess = "assess";
inline constexpr std::string_view kJobRecover = "recover";
// Delivers an asynchronous message's response: a job of its own, so that a failed delivery
// never changes the outcome of the assessment (or repeats it).
inline constexpr std::string_view kJobRespond = "respond";

// A `$process-message` request, checked and turned into its job.
struct MessageTrigger {
    NewJob job;            // carries the MessageRecord with the response to store
    std::string response;  // the response message Bundle (JSON)
    bool is_async = false;
    // For a message that can never succeed: the fatal-error response message to answer with,
    // and no job.
    bool fatal = false;
};

struct MessageOptions {
    std::string endpoint_name;  // our MessageHeader.source.endpoint
    bool is_async = false;      // ?async=true
    std::string response_url;   // ?response-url=
    // Where asynchronous responses may go (normal form, see outbound_url.hpp): a response-url or
    // source endpoint elsewhere is refused when the message arrives.
    std::vector<std::string> allowed_response_urls;
};

// Checks a message Bundle. Structural problems (not a message Bundle, no MessageHeader, no
// ids, no Encounter focus) are reported to `issues` with their path and give nullopt.
std::optional<MessageTrigger> ParseProcessMessage(fhir::Node bundle, const MessageOptions& options,
                                                  fhir::Instant now, fhir::IssueList& issues);

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

// The CapabilityStatement served at [base]/metadata.
std::string CapabilityStatementJson(const std::string& base_url, fhir::Instant now);

std::string_view ToString(Notification::Type type);

}  // namespace microcare::adapter
