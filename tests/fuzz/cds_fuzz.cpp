// libFuzzer target: what a CDS client sends or serves: a hook request (checked against each
// service, as CdsRoutes does before anything is read or evaluated) and a JWK Set (as fetched
// from an issuer's JWKS URL).
#include <cstddef>
#include <cstdint>
#include <string>

#include "adapter/cds/cds_hooks.hpp"
#include "adapter/cds/cds_request.hpp"
#include "adapter/cds/jwk_set.hpp"

namespace {

namespace adapter = microcare::adapter;
namespace fhir = microcare::fhir;

void Check(fhir::Node body, const adapter::CdsServiceSpec& service) {
    fhir::IssueList issues;
    auto request = adapter::ParseHookRequest(body, service, issues);
    if (!request) {
        if (!issues.HasErrors()) __builtin_trap();  // a refusal is always explained
        return;
    }
    // What goes into a query to the fhirServer is an id, never query syntax.
    if (!adapter::IsFhirId(request->patient_id)) __builtin_trap();
    if (!request->encounter_id.empty() && !adapter::IsFhirId(request->encounter_id)) {
        __builtin_trap();
    }
    for (const adapter::PrefetchTemplate& t : adapter::PrefetchTemplates(service.hook)) {
        const std::string query =
            adapter::FillTemplate(t.query, request->patient_id, request->encounter_id);
        if (query.find('{') != std::string::npos || query.find('#') != std::string::npos) {
            __builtin_trap();
        }
    }
    for (fhir::Node proposed : request->proposed) {
        if (!adapter::IsFhirId(proposed["id"].String())) __builtin_trap();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    if (auto keys = adapter::ParseJwks(text)) {
        for (const adapter::JsonWebKey& key : *keys) {
            if (!key.key || key.kid.empty()) __builtin_trap();
        }
    }
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(text, issues);
    if (!doc) return 0;
    for (const adapter::CdsServiceSpec& service : adapter::CdsServices()) {
        Check(doc->Root(), service);
    }
    return 0;
}
