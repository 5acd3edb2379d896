// Golden files for `microcare evaluate` on every sample record: the transaction it prints and
// its summary, at a fixed time with the default pack. A change in what MicroCare would write
// shows as a diff against tests/golden/evaluate/. After an intended change, regenerate with
//   MICROCARE_UPDATE_GOLDEN=1 build/tests/microcare_unit_tests --gtest_filter='Golden*'
// and review the diff like code.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "adapter/evaluate_command.hpp"
#include "adapter/file_io.hpp"

namespace microcare::adapter {
namespace {

namespace fs = std::filesystem;
const fs::path kSource = MICROCARE_SOURCE_DIR;

struct Sample {
    std::string record;  // file name under config/examples
    std::optional<std::string> encounter;
    std::string golden;  // file stem under tests/golden/evaluate
};

std::vector<Sample> Samples() {
    std::vector<Sample> samples;
    for (const auto& entry : fs::directory_iterator(kSource / "config/examples")) {
        const std::string name = entry.path().filename().string();
        if (entry.path().extension() != ".json" || name == "expected.json") continue;
        samples.push_back({name, std::nullopt, entry.path().stem().string()});
    }
    std::sort(samples.begin(), samples.end(),
              [](const Sample& a, const Sample& b) { return a.golden < b.golden; });
    // The other visit of several-encounters.json, chosen on the command line.
    samples.push_back(
        {"several-encounters.json", "Encounter/enc-mn-20261016", "several-encounters-16-oct"});
    return samples;
}

class Golden : public ::testing::TestWithParam<Sample> {};

TEST_P(Golden, EvaluateOutputMatches) {
    const Sample& sample = GetParam();
    EvaluateArgs args;
    args.record_path = (kSource / "config/examples" / sample.record).string();
    args.rules_path = (kSource / "config/rules/microneedling.json").string();
    args.now = "2026-11-24T12:00:00Z";
    args.encounter = sample.encounter;
    std::ostringstream out;
    std::ostringstream err;
    ASSERT_EQ(RunEvaluate(args, out, err), 0) << err.str();
    const std::string actual = out.str() + "--- summary\n" + err.str();

    const fs::path golden = kSource / "tests/golden/evaluate" / (sample.golden + ".txt");
    if (std::getenv("MICROCARE_UPDATE_GOLDEN") != nullptr) {
        std::ofstream(golden, std::ios::binary) << actual;
        GTEST_SKIP() << "wrote " << golden;
    }
    auto expected = ReadFile(golden.string());
    ASSERT_TRUE(expected) << golden << " is missing: run with MICROCARE_UPDATE_GOLDEN=1";
    EXPECT_EQ(actual, *expected) << "the output for " << sample.golden
                                 << " changed; if intended, regenerate the golden files";
}

INSTANTIATE_TEST_SUITE_P(Samples, Golden, ::testing::ValuesIn(Samples()),
                         [](const ::testing::TestParamInfo<Sample>& info) {
                             std::string name = info.param.golden;
                             for (char& c : name) {
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             }
                             return name;
                         });

}  // namespace
}  // namespace microcare::adapter
