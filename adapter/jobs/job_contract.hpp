#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "adapter/store/job_store.hpp"

namespace microcare::adapter {

// The contract between what journals a trigger (the server, and the worker replaying missed
// events) and what carries it out (the worker): the kinds of job, what each one's payload
// holds, and the trigger keys that make a re-sent trigger find its job instead of making a
// second one. Every job is built here, so the keys cannot drift apart.

inline constexpr std::string_view kJobAssess = "assess";
inline constexpr std::string_view kJobRecover = "recover";
// Screen a booked Appointment before the visit (pre-visit screening); its current status
// decides: booked is screened, cancelled (or a no-show, or entered in error) retires what the
// last screening wrote.
inline constexpr std::string_view kJobScreen = "screen";
// Delivers an asynchronous message's response: a job of its own, so that a failed delivery
// never changes the outcome of the assessment (or repeats it).
inline constexpr std::string_view kJobRespond = "respond";

// What the worker is asked to do, as stored in Job::payload.
struct JobPayload {
    std::string encounter;     // "Encounter/123" on the EHR
    std::string appointment;   // "screen" jobs: "Appointment/7" on the EHR
    std::string respond_to;    // async $process-message: where the response message goes
    std::string response;      // that response message
    std::string subscription;  // "recover" jobs: the subscription and the missing events
    std::int64_t from_event = 0;
    std::int64_t to_event = 0;

    std::string ToJson() const;
    static std::optional<JobPayload> FromJson(const std::string& json);
};

// Assess the Encounter a `$process-message` names, or screen the Appointment it books
// ("Appointment/7"). `respond_to` (normal form, already allowed by the configuration) is set
// for an asynchronous message: the response goes there later.
NewJob MessageJob(const MessageRecord& message, const std::string& focus,
                  const std::string& respond_to);

// Assess the Encounter of a numbered Subscription event (from a notification or a replay).
NewJob SubscriptionEventJob(const std::string& subscription, std::int64_t number,
                            const std::string& encounter);

// Assess the Encounter of an R4 rest-hook notification. Those carry no event number: each
// request is a trigger of its own (the idempotent write-back keeps repeats harmless).
NewJob R4NotificationJob(const std::string& encounter, std::string_view request_id);

// Assess an Encounter again because `rules replay --apply` found that the pack with SHA-256
// `pack_sha256` concludes otherwise. One per encounter and pack: a repeated replay finds the
// job it queued before instead of making a second one.
NewJob ReplayJob(const std::string& encounter, std::string_view pack_sha256);

// Assess an Encounter a poll of the EHR found finished. One per version of the encounter
// (`version`: its meta.versionId, or its meta.lastUpdated where it has none): the overlap
// window reads it again and finds its job, while a later version is assessed again.
NewJob PollJob(const std::string& encounter, std::string_view version);

// Screen an Appointment a poll found, one per `version` (its meta.versionId, or
// "@lastUpdated"; for the periodic re-screening of every booked appointment, "rescreen@" and
// the instant that sweep was due): the overlap window finds its job, a change screens again.
NewJob ScreenJob(const std::string& appointment, std::string_view version);

// Ask the EHR to replay events `from`-`to` of a subscription. `event` is recorded with the
// job when it stands for an event of the notification being journaled.
NewJob RecoverJob(const std::string& subscription, std::int64_t from, std::int64_t to,
                  std::optional<SubscriptionEvent> event);

// Deliver the response of the message job `assessed`; one per message.
NewJob RespondJob(const Job& assessed, const JobPayload& payload);

}  // namespace microcare::adapter
