// Every rule of the default pack, both ways: tests/fixtures/rules/cases.json holds, per case,
// the resources added to a minimal record (a Patient and a finished microneedling Encounter)
// and whether the rule must be found (with its severity and implicated resource) or not. One
// named test per case, each run through the assessment pipeline the service and CLI use.
#include <gtest/gtest.h>

#include <set>

#include "fhir/json.hpp"
#include "rules/record_assessment.hpp"
#include "tests/unit/rules/source_files.hpp"

namespace microcare::rules {
namespace {

using testing::DefaultPack;

// The fixture file, parsed once for the whole suite.
const fhir::JsonDocument& CasesFile() {
    static const fhir::JsonDocument file = [] {
        auto text = testing::ReadSourceFile("tests/fixtures/rules/cases.json");
        if (!text) throw std::runtime_error("tests/fixtures/rules/cases.json cannot be read");
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(*text, issues);
        if (!doc) throw std::runtime_error("tests/fixtures/rules/cases.json is not JSON");
        return std::move(*doc);
    }();
    return file;
}

std::vector<std::size_t> CaseIndexes() {
    std::vector<std::size_t> indexes(CasesFile().Root()["cases"].Size());
    for (std::size_t i = 0; i < indexes.size(); ++i) indexes[i] = i;
    return indexes;
}

// The record for one case: the minimal record and the case's resources.
std::string RecordText(fhir::Node file, fhir::Node c) {
    std::string start(c["encounterStart"].Exists() ? c["encounterStart"].String()
                                                   : file["encounterStart"].String());
    std::string birth(c["birthDate"].Exists() ? c["birthDate"].String()
                                              : file["patientBirthDate"].String());
    std::string text =
        R"({"resourceType":"Bundle","type":"collection","entry":[)"
        R"({"fullUrl":"http://ehr.example/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1","birthDate":")" +
        birth +
        R"("}},{"fullUrl":"http://ehr.example/fhir/Encounter/enc1","resource":{"resourceType":"Encounter","id":"enc1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"type":[{"text":"Microneedling"}],"subject":{"reference":"Patient/p1"},"period":{"start":")" +
        start + R"("}}})";
    fhir::Node resources = c["resources"];
    for (std::size_t i = 0; i < resources.Size(); ++i) {
        std::string type(resources[i]["resourceType"].String());
        std::string id(resources[i]["id"].String());
        text += R"(,{"fullUrl":"http://ehr.example/fhir/)" + type + "/" + id + R"(","resource":)" +
                fhir::Serialize(resources[i]) + "}";
    }
    return text + "]}";
}

class DefaultPackCase : public ::testing::TestWithParam<std::size_t> {};

TEST_P(DefaultPackCase, FindsTheRuleOrNotAsSpecified) {
    const fhir::Node file = CasesFile().Root();
    const fhir::Node c = file["cases"][GetParam()];
    const std::string rule_id(c["rule"].String());
    const std::string record = RecordText(file, c);
    // Four days after the session (the encounter's start) unless the case says otherwise.
    std::string start(c["encounterStart"].Exists() ? c["encounterStart"].String()
                                                   : file["encounterStart"].String());
    const fhir::Instant now = fhir::AddCalendar(fhir::DateTime::Parse(start)->Earliest(0),
                                                *fhir::CalendarDuration::Parse("P4D"), 1, 0);
    fhir::IssueList issues;
    auto run =
        RecordAssessment::Run(DefaultPack(), record, {"Encounter/enc1", "case"}, now, issues);
    for (const fhir::Issue& issue : issues) ADD_FAILURE() << fhir::FormatIssue(issue);
    ASSERT_TRUE(run) << record;
    const Assessment& a = run->assessment();
    ASSERT_TRUE(a.applies) << a.explanation;

    const Finding* finding = nullptr;
    std::string all;
    for (const Finding& f : a.findings) {
        if (DefaultPack().rules[f.rule].id == rule_id) finding = &f;
        all += DefaultPack().rules[f.rule].id + " ";
    }
    if (c["expect"].String() == "notFound") {
        EXPECT_EQ(finding, nullptr) << rule_id << " found; found: " << all;
        return;
    }
    ASSERT_EQ(c["expect"].String(), "found");
    ASSERT_NE(finding, nullptr) << rule_id << " not found; found: " << all;
    if (c["severity"].Exists()) {
        EXPECT_EQ(ToString(finding->severity), c["severity"].String());
    }
    if (c["implicated"].Exists()) {
        bool implicated = false;
        for (const Evidence& e : finding->evidence) {
            implicated = implicated || e.resource->reference == c["implicated"].String();
        }
        EXPECT_TRUE(implicated) << "evidence does not name " << c["implicated"].String();
    }
}

// The case's own name, made a valid test name: `isotretinoin-5-months ago` ->
// `isotretinoin_5_months_ago`.
std::string CaseName(const ::testing::TestParamInfo<std::size_t>& info) {
    std::string name(CasesFile().Root()["cases"][info.param]["name"].String());
    for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    }
    return name + "_" + std::to_string(info.param);
}

INSTANTIATE_TEST_SUITE_P(Cases, DefaultPackCase, ::testing::ValuesIn(CaseIndexes()), CaseName);

// Every rule of the pack is exercised in both directions.
TEST(DefaultPackCases, CoverEveryRuleBothWays) {
    std::set<std::string> found_rules;
    std::set<std::string> not_found_rules;
    const fhir::Node cases = CasesFile().Root()["cases"];
    for (std::size_t i = 0; i < cases.Size(); ++i) {
        const std::string rule_id(cases[i]["rule"].String());
        (cases[i]["expect"].String() == "found" ? found_rules : not_found_rules).insert(rule_id);
    }
    for (const Rule& rule : DefaultPack().rules) {
        EXPECT_TRUE(found_rules.count(rule.id)) << "no case finds " << rule.id;
        EXPECT_TRUE(not_found_rules.count(rule.id)) << "no case rules out " << rule.id;
    }
}

}  // namespace
}  // namespace microcare::rules
