// Inputs the configuration fuzzer (tests/fuzz/service_config_fuzz.cpp) found; the same inputs
// are replayed from tests/fuzz/regressions/service_config/ on every fuzz run.
#include <gtest/gtest.h>

#include "adapter/service_config.hpp"

namespace microcare::adapter {
namespace {

bool HasIssueAt(const fhir::IssueList& issues, const std::string& path) {
    for (const fhir::Issue& issue : issues) {
        if (issue.path == path) return true;
    }
    return false;
}

// A number far beyond long long's range used to be converted to long long before the range
// check, which is undefined behaviour (UBSan: float-cast-overflow). Now it is just out of range.
TEST(ServiceConfigFuzzFindings, HugeNumbersAreOutOfRangeNotConverted) {
    EnvLookup env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    FileReader files = [](const std::string&) -> std::optional<std::string> {
        return std::nullopt;
    };
    fhir::IssueList issues;
    auto config = ParseServiceConfig(
        R"({"server": {"port": 1e300, "threads": -1e300, "auth": {"bearerTokens": []}},
            "ehr": {"baseUrl": "https://ehr.example",
                    "requestTimeoutMs": 3000018446744073709551616}})",
        env, files, issues);
    EXPECT_FALSE(config);
    EXPECT_TRUE(HasIssueAt(issues, "server.port"));
    EXPECT_TRUE(HasIssueAt(issues, "server.threads"));
    EXPECT_TRUE(HasIssueAt(issues, "ehr.requestTimeoutMs"));
}

}  // namespace
}  // namespace microcare::adapter
