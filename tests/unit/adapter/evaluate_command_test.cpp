// Runs `microcare evaluate` on every sample record of config/examples and checks the outcome
// its expected.json describes: which rules are found and not found, the session number, the
// next activity, the Task, and an empty transaction for a non-microneedling encounter.
#include "adapter/evaluate_command.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "adapter/file_io.hpp"
#include "fhir/json.hpp"
#include "rules/plan_writer.hpp"

namespace microcare::adapter {
namespace {

const std::string kExamples = std::string(MICROCARE_SOURCE_DIR) + "/config/examples/";
const std::string kRules = std::string(MICROCARE_SOURCE_DIR) + "/config/rules/microneedling.json";
constexpr const char* kNow = "2026-11-24T12:00:00Z";

struct CommandRun {
    int code = -1;
    std::string out;
    std::string err;
};

CommandRun Evaluate(const std::string& file, std::optional<std::string> encounter = std::nullopt) {
    EvaluateArgs args;
    args.record_path = file;
    args.rules_path = kRules;
    args.now = kNow;
    args.encounter = std::move(encounter);
    std::ostringstream out;
    std::ostringstream err;
    CommandRun run;
    run.code = RunEvaluate(args, out, err);
    run.out = out.str();
    run.err = err.str();
    return run;
}

std::vector<fhir::Node> Resources(fhir::Node bundle, std::string_view type) {
    std::vector<fhir::Node> result;
    for (std::size_t i = 0; i < bundle["entry"].Size(); ++i) {
        fhir::Node resource = bundle["entry"][i]["resource"];
        if (resource["resourceType"].String() == type) result.push_back(resource);
    }
    return result;
}

std::set<std::string> FoundRules(fhir::Node bundle) {
    std::set<std::string> ids;
    for (fhir::Node issue : Resources(bundle, "DetectedIssue")) {
        fhir::Node codings = issue["code"]["coding"];
        for (std::size_t i = 0; i < codings.Size(); ++i) {
            if (codings[i]["system"].String() == rules::kRuleCodeSystem) {
                ids.emplace(codings[i]["code"].String());
            }
        }
    }
    return ids;
}

void CheckOutcome(const std::string& name, const CommandRun& run, fhir::Node expected) {
    SCOPED_TRACE(name);
    ASSERT_EQ(run.code, 0) << run.err;
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(run.out, issues);
    ASSERT_TRUE(doc) << run.out;
    fhir::Node bundle = doc->Root();
    EXPECT_EQ(bundle["type"].String(), "transaction");
    if (expected["empty"].Bool().value_or(false)) {
        EXPECT_EQ(bundle["entry"].Size(), 0u);
        EXPECT_NE(run.err.find("not a microneedling encounter"), std::string::npos) << run.err;
        return;
    }
    auto plans = Resources(bundle, "CarePlan");
    ASSERT_EQ(plans.size(), 1u);
    EXPECT_EQ(plans[0]["encounter"]["reference"].String(), expected["encounter"].String());

    std::set<std::string> found = FoundRules(bundle);
    for (std::size_t i = 0; i < expected["found"].Size(); ++i) {
        EXPECT_TRUE(found.count(std::string(expected["found"][i].String())))
            << "expected rule " << expected["found"][i].String() << "\n"
            << run.err;
    }
    for (std::size_t i = 0; i < expected["notFound"].Size(); ++i) {
        EXPECT_FALSE(found.count(std::string(expected["notFound"][i].String())))
            << "unexpected rule " << expected["notFound"][i].String() << "\n"
            << run.err;
    }
    EXPECT_EQ(Resources(bundle, "Task").size(), expected["task"].Bool().value_or(false) ? 1u : 0u);

    // The next activity: session n+1 of the series, or maintenance once it is complete.
    int session = static_cast<int>(expected["session"].Number().value_or(0));
    int length = static_cast<int>(expected["seriesLength"].Number().value_or(0));
    std::string next_text =
        expected["nextKind"].String() == "maintenance"
            ? "Series of " + std::to_string(length) + " complete"
            : "Session " + std::to_string(session + 1) + " of " + std::to_string(length);
    fhir::Node activities = plans[0]["activity"];
    bool seen = false;
    for (std::size_t i = 0; i < activities.Size(); ++i) {
        seen = seen || activities[i]["detail"]["description"].String().find(next_text) == 0;
    }
    EXPECT_TRUE(seen) << "no activity starting with \"" << next_text << "\"\n" << run.err;
}

TEST(EvaluateCommand, EverySampleRecordGivesItsExpectedOutcome) {
    auto text = ReadFile(kExamples + "expected.json");
    ASSERT_TRUE(text);
    fhir::IssueList issues;
    auto expected = fhir::JsonDocument::Parse(*text, issues);
    ASSERT_TRUE(expected);
    ASSERT_GE(expected->Root().Size(), 8u);
    expected->Root().ForEachMember([&](std::string_view file, fhir::Node outcome) {
        CheckOutcome(std::string(file), Evaluate(kExamples + std::string(file)), outcome);
        if (outcome["otherEncounter"].Exists()) {
            fhir::Node other = outcome["otherEncounter"];
            CheckOutcome(
                std::string(file) + " --encounter",
                Evaluate(kExamples + std::string(file), std::string(other["encounter"].String())),
                other);
        }
    });
}

TEST(EvaluateCommand, SameInputGivesTheSameBytes) {
    CommandRun first = Evaluate(kExamples + "absolute-isotretinoin.json");
    CommandRun second = Evaluate(kExamples + "absolute-isotretinoin.json");
    EXPECT_EQ(first.out, second.out);
}

TEST(EvaluateCommand, BadInputExitsTwoWithThePath) {
    auto write = [](const std::string& name, const std::string& content) {
        std::string path = ::testing::TempDir() + name;
        FILE* f = std::fopen(path.c_str(), "wb");
        std::fwrite(content.data(), 1, content.size(), f);
        std::fclose(f);
        return path;
    };
    CommandRun syntax = Evaluate(write("syntax.json", "{\"resourceType\": \"Bundle\", }"));
    EXPECT_EQ(syntax.code, 2);
    EXPECT_NE(syntax.err.find("line 1"), std::string::npos) << syntax.err;
    EXPECT_TRUE(syntax.out.empty());

    CommandRun not_bundle = Evaluate(write("patient.json", R"({"resourceType": "Patient"})"));
    EXPECT_EQ(not_bundle.code, 2);
    EXPECT_NE(not_bundle.err.find("resourceType"), std::string::npos);

    CommandRun bad_date =
        Evaluate(write("bad-date.json", R"({"resourceType":"Bundle","type":"collection","entry":[
        {"resource":{"resourceType":"Encounter","id":"e","status":"finished","subject":{"reference":"Patient/p"},
          "type":[{"text":"Microneedling"}],"period":{"start":"2026-11-31"}}}]})"));
    EXPECT_EQ(bad_date.code, 2);
    EXPECT_NE(bad_date.err.find("Bundle.entry[0].resource.period.start"), std::string::npos)
        << bad_date.err;

    CommandRun no_subject =
        Evaluate(write("no-subject.json", R"({"resourceType":"Bundle","type":"collection","entry":[
        {"resource":{"resourceType":"Encounter","id":"e","status":"finished","type":[{"text":"Microneedling"}]}}]})"));
    EXPECT_EQ(no_subject.code, 2);
    EXPECT_NE(no_subject.err.find("Bundle.entry[0].resource.subject"), std::string::npos);

    CommandRun unknown_encounter =
        Evaluate(kExamples + "several-encounters.json", "Encounter/nope");
    EXPECT_EQ(unknown_encounter.code, 2);
    EXPECT_NE(unknown_encounter.err.find("--encounter"), std::string::npos);

    CommandRun missing = Evaluate("/nonexistent/record.json");
    EXPECT_EQ(missing.code, 2);
}

// Issue 7, item 8: a FIFO with no writer made `evaluate` hang; /dev/zero said "The document is
// empty". Neither is a record: both are refused at once, saying why.
TEST(EvaluateCommand, RefusesWhatIsNotARegularFileOfSensibleSize) {
    const auto dir = std::filesystem::temp_directory_path() /
                     ("microcare-evaluate-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    const std::string fifo = (dir / "record.fifo").string();
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    const std::string large = (dir / "large.json").string();
    std::ofstream(large).put('{');
    std::filesystem::resize_file(large, 65 * 1024 * 1024);  // sparse: costs no disk

    struct Case {
        std::string path;
        std::string says;
    };
    for (const Case& c : std::vector<Case>{{fifo, "not a regular file"},
                                           {"/dev/zero", "not a regular file"},
                                           {dir.string(), "is a directory"},
                                           {large, "larger than the limit"},
                                           {(dir / "missing.json").string(), "No such file"}}) {
        CommandRun run = Evaluate(c.path);
        EXPECT_EQ(run.code, 2) << c.path;
        EXPECT_NE(run.err.find(c.says), std::string::npos) << c.path << ": " << run.err;
        EXPECT_TRUE(run.out.empty());
    }
    std::filesystem::remove_all(dir);
}

// Issue 7, item 3: the CLI refuses what the service refuses, with the JSON path.
TEST(EvaluateCommand, RefusesDuplicateMembersWithTheirPath) {
    const auto path = std::filesystem::temp_directory_path() /
                      ("microcare-duplicate-" + std::to_string(::getpid()) + ".json");
    std::ofstream(path) << R"({"resourceType":"Bundle","type":"collection","type":"batch"})";
    CommandRun run = Evaluate(path.string());
    EXPECT_EQ(run.code, 2);
    EXPECT_NE(run.err.find("Bundle.type"), std::string::npos) << run.err;
    std::filesystem::remove(path);
}

}  // namespace
}  // namespace microcare::adapter
