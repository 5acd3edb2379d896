#include "adapter/rule_pack_file.hpp"

#include <cstdlib>
#include <filesystem>

#include "adapter/audit/audit_log.hpp"
#include "adapter/file_io.hpp"
#include "adapter/issue_report.hpp"
#include "rules/rule_set_loader.hpp"

namespace microcare::adapter {

// The paths come from CMakeLists.txt. The installed pack is looked for relative to the
// executable (<bindir>/../share/microcare/...), not at a fixed prefix, so that a relocated or
// DESTDIR-staged install reads its own copy; the source tree's serves the binary run from its
// build directory. With none present, the installed path is named in the error.
std::string DefaultRulePackPath() {
    namespace fs = std::filesystem;
    if (const char* env = std::getenv("MICROCARE_RULES"); env != nullptr && *env != '\0') {
        return env;
    }
    std::error_code error;
    const fs::path executable = fs::read_symlink("/proc/self/exe", error);
    const fs::path installed =
        error ? fs::path(MICROCARE_INSTALLED_RULES)
              : (executable.parent_path() / MICROCARE_INSTALLED_RULES).lexically_normal();
    for (const fs::path& candidate :
         {fs::path(MICROCARE_SYSCONF_RULES), installed, fs::path(MICROCARE_SOURCE_RULES)}) {
        if (candidate.is_absolute() && fs::exists(candidate, error)) return candidate.string();
    }
    return installed.string();
}

std::string RulePackPath(const std::string& configured) {
    return configured.empty() ? DefaultRulePackPath() : configured;
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

std::optional<rules::RuleSet> CheckRulePackFile(const std::string& path, std::ostream& err) {
    fhir::IssueList issues;
    auto rule_set = LoadRulePackFile(path, issues);
    ReportIssues(err, path, issues);
    if (!rule_set) ReportRefused(err, path, issues);
    return rule_set;
}

}  // namespace microcare::adapter
