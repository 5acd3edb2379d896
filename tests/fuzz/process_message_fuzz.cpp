// libFuzzer target: the body of `$process-message`, read as FhirEndpoint::ProcessMessage does
// (synchronous, asynchronous with the sender's endpoint, asynchronous with ?response-url=).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "adapter/client/outbound_url.hpp"
#include "adapter/server/inbound.hpp"

namespace {

namespace adapter = microcare::adapter;
namespace fhir = microcare::fhir;

const fhir::Instant kNow = fhir::DateTime::Parse("2026-11-24T12:00:00Z")->Earliest();

void Check(const fhir::JsonDocument& doc, const adapter::MessageOptions& options) {
    fhir::IssueList issues;
    auto trigger = adapter::ParseProcessMessage(doc.Root(), options, kNow, issues);
    if (!trigger) {
        if (!issues.HasErrors()) __builtin_trap();  // a refusal is always explained
        return;
    }
    // The response message is sent back as it is: it must be JSON MicroCare reads itself.
    fhir::IssueList response_issues;
    if (!fhir::JsonDocument::Parse(trigger->response, response_issues)) __builtin_trap();
    if (trigger->fatal) return;
    // The job's payload is stored and read back by the worker.
    auto payload = adapter::JobPayload::FromJson(trigger->job.payload);
    if (!payload || payload->encounter != trigger->job.encounter) __builtin_trap();
    // An asynchronous response only ever goes where the configuration allows.
    if (!payload->respond_to.empty() &&
        !adapter::IsAllowed(payload->respond_to, options.allowed_response_urls)) {
        __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(text, issues);
    if (!doc) return 0;
    // Plain assignments, not designated initializers: g++ warns of the members left out.
    adapter::MessageOptions options;
    options.endpoint_name = "urn:microcare";
    Check(*doc, options);
    options.endpoint_name = "https://microcare.example/fhir";
    options.is_async = true;
    options.allowed_response_urls = {"https://ehr.example/callback"};
    Check(*doc, options);
    options.response_url = "https://EHR.example:443/a/../callback";
    Check(*doc, options);
    return 0;
}
