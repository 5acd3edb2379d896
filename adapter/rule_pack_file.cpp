#include "adapter/rule_pack_file.hpp"

#include <cstdlib>
#include <filesystem>

#include "adapter/audit/audit_log.hpp"
#include "adapter/file_io.hpp"
#include "rules/rule_set_loader.hpp"

namespace microcare::adapter {

std::string DefaultRulePackPath() {
    if (const char* env = std::getenv("MICROCARE_RULES"); env != nullptr && *env != '\0') {
        return env;
    }
    for (const char* candidate :
         {"/etc/microcare/rules/microneedling.json", "config/rules/microneedling.json"}) {
        if (std::filesystem::exists(candidate)) return candidate;
    }
    return MICROCARE_DEFAULT_RULES;
}

std::optional<rules::RuleSet> LoadRulePackFile(const std::string& path, fhir::IssueList& issues) {
    std::string problem;
    auto text = ReadFile(path, &problem);
    if (!text) {
        issues.Error("not-found", "", "cannot read the rule pack " + path + ": " + problem);
        return std::nullopt;
    }
    const std::filesystem::path folder = std::filesystem::path(path).parent_path();
    rules::PackFileReader read_relative = [&folder](std::string_view relative) {
        return ReadFile((folder / std::string(relative)).string());
    };
    // The digest is taken here because the adapter is what links OpenSSL; what is hashed is the
    // loader's to define, since only it knows which files the pack includes and in which order.
    return rules::LoadRuleSet(*text, read_relative, issues, Sha256Hex);
}

}  // namespace microcare::adapter
