// Reads every one of HL7's official R4 examples (npm hl7.fhir.r4.examples 4.0.1, fetched by
// tests/r4examples/fetch.sh into $MICROCARE_R4_EXAMPLES): no crash, no false error, and a
// lossless round trip, decimal precision included.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "fhir/bundle.hpp"
#include "fhir/json.hpp"
#include "fhir/patient_record.hpp"

namespace microcare::fhir {
namespace {

std::string Slurp(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

TEST(R4Examples, EveryOfficialExampleReadsAndRoundTrips) {
    const char* dir = std::getenv("MICROCARE_R4_EXAMPLES");
    if (dir == nullptr || *dir == '\0') {
        GTEST_SKIP() << "MICROCARE_R4_EXAMPLES is not set (deploy/test.sh sets it)";
    }
    std::size_t files = 0;
    std::size_t resources = 0;
    std::size_t decimals_seen = 0;
    std::vector<std::string> failures;
    for (const auto& item : std::filesystem::directory_iterator(dir)) {
        const auto& path = item.path();
        if (path.extension() != ".json" || path.filename() == "package.json" ||
            path.filename().string().starts_with(".")) {
            continue;
        }
        ++files;
        const std::string text = Slurp(path);
        IssueList issues;
        auto doc = JsonDocument::Parse(text, issues);
        if (!doc) {
            failures.push_back(path.filename().string() + ": " + issues.issues()[0].message);
            continue;
        }
        const std::string written = Serialize(doc->Root());
        auto again = JsonDocument::Parse(written, issues);
        if (!again || !JsonEqual(doc->Root(), again->Root()) ||
            Serialize(again->Root()) != written) {
            failures.push_back(path.filename().string() + ": the round trip changed the content");
            continue;
        }
        decimals_seen += written.find(".0") != std::string::npos ? 1 : 0;
        BundleIndex index(doc->Root(), issues);
        PatientRecord record = ReadPatientRecord(index, issues);
        resources += record.resources.size();
        for (const Issue& issue : issues) {
            failures.push_back(path.filename().string() + ": " + FormatIssue(issue));
        }
    }
    EXPECT_GE(files, 5000u) << "the examples package looks incomplete";
    EXPECT_GT(resources, 300u);  // Conditions, medications, observations... read as evidence
    EXPECT_GT(decimals_seen, 0u);
    std::string report;
    for (std::size_t i = 0; i < failures.size() && i < 40; ++i) report += failures[i] + "\n";
    EXPECT_TRUE(failures.empty()) << failures.size() << " of " << files << " files failed:\n"
                                  << report;
}

}  // namespace
}  // namespace microcare::fhir
