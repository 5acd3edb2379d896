// libFuzzer target: the FHIR JSON reader every inbound body and every file goes through.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fhir/json.hpp"

namespace {

using microcare::fhir::IssueList;
using microcare::fhir::JsonDocument;

// What was read must survive being written and read again unchanged: the service writes parts
// of inbound documents back out (response messages, stored payloads).
void CheckRoundTrip(const JsonDocument& doc) {
    const std::string written = microcare::fhir::Serialize(doc.Root());
    IssueList issues;
    auto again = JsonDocument::Parse(written, issues);
    if (!again || !microcare::fhir::JsonEqual(doc.Root(), again->Root())) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    IssueList issues;
    auto doc = JsonDocument::Parse(text, issues);
    if (!doc) {
        // A refusal is always explained.
        if (!issues.HasErrors()) __builtin_trap();
        return 0;
    }
    CheckRoundTrip(*doc);
    // A shallow limit takes the depth check's refusal path on the same input.
    IssueList shallow_issues;
    (void)JsonDocument::Parse(text, shallow_issues, {.max_depth = 3});
    return 0;
}
