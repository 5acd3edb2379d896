// The rules/ tests read the shipped pack and fixtures from the source tree with the standard
// library only: they link microcare_rules and nothing of the adapter.
#pragma once

#include <fstream>
#include <iterator>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include "fhir/issues.hpp"
#include "rules/rule_set.hpp"
#include "rules/rule_set_loader.hpp"

namespace microcare::rules::testing {

inline const std::string kSourceDir = MICROCARE_SOURCE_DIR;

inline std::optional<std::string> ReadSourceFile(const std::string& relative) {
    std::ifstream in(kSourceDir + "/" + relative, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// The shipped default pack (config/rules/microneedling.json and its value sets).
inline const RuleSet& DefaultPack() {
    static const RuleSet pack = [] {
        const std::string folder = "config/rules/";
        auto text = ReadSourceFile(folder + "microneedling.json");
        if (!text) throw std::runtime_error("the default pack cannot be read");
        fhir::IssueList issues;
        auto loaded = LoadRuleSet(
            *text,
            [&](std::string_view relative) {
                return ReadSourceFile(folder + std::string(relative));
            },
            issues);
        if (!loaded) throw std::runtime_error("the default pack does not load");
        return std::move(*loaded);
    }();
    return pack;
}

}  // namespace microcare::rules::testing
