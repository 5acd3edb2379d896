// libFuzzer target: the service configuration reader, with a fake environment and file system
// so that `${NAME}` substitution and secret files are reached without touching the machine.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "adapter/service_config.hpp"

namespace {

using microcare::adapter::EnvLookup;
using microcare::adapter::FileReader;

// Names starting with UNSET are missing; the others hold a value long enough to be a token.
std::optional<std::string> FakeEnv(const std::string& name) {
    if (name.starts_with("UNSET")) return std::nullopt;
    return "value-of-" + name + "-0123456789abcdef";
}

// Paths containing "missing" cannot be read; the others hold a PEM-looking secret.
std::optional<std::string> FakeFile(const std::string& path) {
    if (path.find("missing") != std::string::npos) return std::nullopt;
    return "-----BEGIN PRIVATE KEY-----\n" + path + "\n-----END PRIVATE KEY-----\r\n\n";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const EnvLookup env = FakeEnv;
    static const FileReader files = FakeFile;
    const std::string text(reinterpret_cast<const char*>(data), size);
    microcare::fhir::IssueList issues;
    auto config = microcare::adapter::ParseServiceConfig(text, env, files, issues);
    // Start-up is refused exactly when something was reported as an error.
    if (config.has_value() == issues.HasErrors()) __builtin_trap();
    return 0;
}
