// libFuzzer target: the rule-pack loader (`microcare rules check`, start-up, reloads).
//
// The input is the pack, optionally followed by a line `#valueset` and the text every value-set
// file the pack names reads as, so that the fuzzer also reaches the ValueSet reader.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "rules/rule_set_loader.hpp"

namespace {

constexpr std::string_view kValueSetMarker = "\n#valueset\n";

// A small expanded ValueSet, for inputs that name a file but carry none.
constexpr std::string_view kDefaultValueSet =
    R"({"resourceType": "ValueSet", "expansion": {"contains": [)"
    R"({"system": "http://snomed.info/sct", "code": "48277006"},)"
    R"({"abstract": true, "contains": [{"system": "http://loinc.org", "code": "1-8"}]}]}})";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t marker = input.find(kValueSetMarker);
    const std::string_view pack = input.substr(0, marker);
    const std::string_view value_set = marker == std::string_view::npos
                                           ? kDefaultValueSet
                                           : input.substr(marker + kValueSetMarker.size());
    microcare::rules::PackFileReader read_file =
        [&](std::string_view relative_path) -> std::optional<std::string> {
        if (relative_path.starts_with("missing")) return std::nullopt;
        return std::string(value_set);
    };
    microcare::fhir::IssueList issues;
    auto rule_set = microcare::rules::LoadRuleSet(pack, read_file, issues);
    // A refused pack always says why; an accepted one has no errors.
    if (rule_set.has_value() == issues.HasErrors()) __builtin_trap();
    return 0;
}
