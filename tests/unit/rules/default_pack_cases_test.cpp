// Every rule of the default pack, both ways: tests/fixtures/rules/cases.json holds, per case,
// the resources added to a minimal record (a Patient and a finished microneedling Encounter)
// and whether the rule must be found (with its severity and implicated resource) or not.
#include <gtest/gtest.h>

#include <set>

#include "adapter/file_io.hpp"
#include "adapter/rule_pack_file.hpp"
#include "fhir/bundle.hpp"
#include "fhir/json.hpp"
#include "fhir/patient_record.hpp"
#include "rules/evaluator.hpp"

namespace microcare::rules {
namespace {

const std::string kSource = MICROCARE_SOURCE_DIR;

const RuleSet& DefaultPack() {
    static const RuleSet pack = [] {
        fhir::IssueList issues;
        auto loaded =
            adapter::LoadRulePackFile(kSource + "/config/rules/microneedling.json", issues);
        if (!loaded) throw std::runtime_error("the default pack does not load");
        return std::move(*loaded);
    }();
    return pack;
}

struct CaseResult {
    std::vector<std::string> problems;
    Assessment assessment;
};

// Builds the record for one case and evaluates it.
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

TEST(DefaultPackCases, EveryRuleIsFoundAndNotFoundAsSpecified) {
    auto text = adapter::ReadFile(kSource + "/tests/fixtures/rules/cases.json");
    ASSERT_TRUE(text);
    fhir::IssueList issues;
    auto file = fhir::JsonDocument::Parse(*text, issues);
    ASSERT_TRUE(file);
    fhir::Node cases = file->Root()["cases"];
    std::set<std::string> found_rules;
    std::set<std::string> not_found_rules;
    for (std::size_t i = 0; i < cases.Size(); ++i) {
        fhir::Node c = cases[i];
        const std::string name(c["name"].String());
        const std::string rule_id(c["rule"].String());
        SCOPED_TRACE(name);
        std::string record_text = RecordText(file->Root(), c);
        fhir::IssueList record_issues;
        auto doc = fhir::JsonDocument::Parse(record_text, record_issues);
        ASSERT_TRUE(doc) << record_text;
        fhir::BundleIndex index(doc->Root(), record_issues);
        fhir::PatientRecord record = fhir::ReadPatientRecord(index, record_issues);
        for (const fhir::Issue& issue : record_issues) ADD_FAILURE() << fhir::FormatIssue(issue);
        const fhir::ClinicalResource* encounter = FindEncounter(record, "Encounter/enc1");
        ASSERT_NE(encounter, nullptr);
        const fhir::Instant now = fhir::AddCalendar(encounter->start->Earliest(0),
                                                    *fhir::CalendarDuration::Parse("P4D"), 1, 0);
        Assessment a = Evaluate(DefaultPack(), record, *encounter, now);
        ASSERT_TRUE(a.applies) << a.explanation;

        const Finding* finding = nullptr;
        for (const Finding& f : a.findings) {
            if (DefaultPack().rules[f.rule].id == rule_id) finding = &f;
        }
        std::string all;
        for (const Finding& f : a.findings) all += DefaultPack().rules[f.rule].id + " ";
        if (c["expect"].String() == "found") {
            found_rules.insert(rule_id);
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
        } else {
            ASSERT_EQ(c["expect"].String(), "notFound");
            not_found_rules.insert(rule_id);
            EXPECT_EQ(finding, nullptr) << rule_id << " found; found: " << all;
        }
    }
    // Every rule of the pack is exercised in both directions.
    for (const Rule& rule : DefaultPack().rules) {
        EXPECT_TRUE(found_rules.count(rule.id)) << "no case finds " << rule.id;
        EXPECT_TRUE(not_found_rules.count(rule.id)) << "no case rules out " << rule.id;
    }
}

}  // namespace
}  // namespace microcare::rules
