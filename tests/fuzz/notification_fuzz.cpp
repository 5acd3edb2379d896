// libFuzzer target: Subscription notifications, in every form FhirEndpoint::Notification
// accepts: an R4 rest-hook resource, an R4B SubscriptionStatus or R4-backport Parameters
// notification Bundle, and an empty body with the resource named by the request path (the
// input text is used as that path too).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "adapter/jobs/job_contract.hpp"
#include "adapter/jobs/notification.hpp"

namespace {

namespace adapter = microcare::adapter;
namespace fhir = microcare::fhir;

void Check(const fhir::JsonDocument* body, std::string_view named_resource) {
    fhir::IssueList issues;
    auto notification = adapter::ParseNotification(body, named_resource, issues);
    if (!notification) {
        if (!issues.HasErrors()) __builtin_trap();  // a refusal is always explained
        return;
    }
    (void)adapter::ToString(notification->type);
    // Job payloads built from a notification must read back (FhirEndpoint stores them).
    adapter::JobPayload payload;
    payload.encounter = notification->r4_encounter;
    payload.subscription = notification->subscription;
    for (const adapter::Notification::Event& event : notification->events) {
        payload.from_event = event.number;
        payload.to_event = event.number;
        if (!event.encounter.empty()) payload.encounter = event.encounter;
        auto back = adapter::JobPayload::FromJson(payload.ToJson());
        if (!back || back->encounter != payload.encounter ||
            back->subscription != payload.subscription ||
            back->from_event != (payload.subscription.empty() ? 0 : event.number)) {
            __builtin_trap();
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    // The empty-body form: what the path says after [base]/notifications/.
    Check(nullptr, text);
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(text, issues);
    if (!doc) return 0;
    Check(&*doc, "");
    Check(&*doc, "Encounter/from-the-path");
    return 0;
}
