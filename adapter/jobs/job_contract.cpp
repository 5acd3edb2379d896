#include "adapter/jobs/job_contract.hpp"

#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

NewJob AssessJob(std::string trigger_key, const std::string& encounter,
                 std::optional<SubscriptionEvent> event) {
    JobPayload payload;
    payload.encounter = encounter;
    return NewJob{std::move(trigger_key),
                  encounter,
                  std::string(kJobAssess),
                  payload.ToJson(),
                  std::nullopt,
                  std::move(event),
                  std::nullopt};
}

}  // namespace

std::string JobPayload::ToJson() const {
    fhir::JsonWriter out;
    out.StartObject();
    if (!encounter.empty()) out.Field("encounter", encounter);
    if (!appointment.empty()) out.Field("appointment", appointment);
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
    fhir::Node root = doc->Root();
    JobPayload payload;
    payload.encounter = root["encounter"].String();
    payload.appointment = root["appointment"].String();
    payload.respond_to = root["respondTo"].String();
    payload.response = root["response"].String();
    payload.subscription = root["subscription"].String();
    payload.from_event = fhir::NonNegativeInteger(root["fromEvent"]).value_or(0);
    payload.to_event = fhir::NonNegativeInteger(root["toEvent"]).value_or(0);
    return payload;
}

NewJob MessageJob(const MessageRecord& message, const std::string& focus,
                  const std::string& respond_to) {
    const bool booking = focus.starts_with("Appointment/");
    JobPayload payload;
    (booking ? payload.appointment : payload.encounter) = focus;
    if (!respond_to.empty()) {
        payload.respond_to = respond_to;
        payload.response = message.response;
    }
    return NewJob{"message:" + message.bundle_id,
                  focus,  // the store runs one job per encounter or appointment at a time
                  std::string(booking ? kJobScreen : kJobAssess),
                  payload.ToJson(),
                  message,
                  std::nullopt,
                  std::nullopt};
}

NewJob SubscriptionEventJob(const std::string& subscription, std::int64_t number,
                            const std::string& encounter) {
    return AssessJob("subscription:" + subscription + ":" + std::to_string(number), encounter,
                     SubscriptionEvent{subscription, number});
}

NewJob R4NotificationJob(const std::string& encounter, std::string_view request_id) {
    return AssessJob("r4:" + encounter + ":" + std::string(request_id), encounter, std::nullopt);
}

NewJob ReplayJob(const std::string& encounter, std::string_view pack_sha256) {
    return AssessJob("replay:" + encounter + ":" + std::string(pack_sha256), encounter,
                     std::nullopt);
}

NewJob PollJob(const std::string& encounter, std::string_view version) {
    return AssessJob("poll:" + encounter + "|" + std::string(version), encounter, std::nullopt);
}

NewJob ScreenJob(const std::string& appointment, std::string_view version) {
    JobPayload payload;
    payload.appointment = appointment;
    return NewJob{"screen:" + appointment + "|" + std::string(version),
                  appointment,
                  std::string(kJobScreen),
                  payload.ToJson(),
                  std::nullopt,
                  std::nullopt,
                  std::nullopt};
}

NewJob RecoverJob(const std::string& subscription, std::int64_t from, std::int64_t to,
                  std::optional<SubscriptionEvent> event) {
    JobPayload payload;
    payload.subscription = subscription;
    payload.from_event = from;
    payload.to_event = to;
    return NewJob{"recover:" + subscription + ":" + std::to_string(from) + "-" + std::to_string(to),
                  "",
                  std::string(kJobRecover),
                  payload.ToJson(),
                  std::nullopt,
                  std::move(event),
                  std::nullopt};
}

NewJob RespondJob(const Job& assessed, const JobPayload& payload) {
    JobPayload respond;
    respond.respond_to = payload.respond_to;
    respond.response = payload.response;
    return NewJob{"respond:" + assessed.trigger_key,
                  "",
                  std::string(kJobRespond),
                  respond.ToJson(),
                  std::nullopt,
                  std::nullopt,
                  std::nullopt};
}

}  // namespace microcare::adapter
