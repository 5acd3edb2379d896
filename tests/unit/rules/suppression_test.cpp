// `suppressedBy` is per evidence resource (issue 9): a suppressing finding hides only the
// records it already shows, so a clinician reviewing the Task sees every relevant record.
// The same-resource cases (one record behind both rules) are in tests/fixtures/rules/cases.json.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "rules/record_assessment.hpp"
#include "tests/unit/rules/source_files.hpp"

namespace microcare::rules {
namespace {

const RuleSet& Pack() { return testing::DefaultPack(); }

std::string Condition(const std::string& id, const std::string& clinical_status,
                      const std::string& system, const std::string& code,
                      const std::string& onset) {
    return R"({"fullUrl":"http://ehr.example/fhir/Condition/)" + id +
           R"(","resource":{"resourceType":"Condition","id":")" + id +
           R"(","clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":")" +
           clinical_status +
           R"("}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}]},"code":{"coding":[{"system":")" +
           system + R"(","code":")" + code +
           R"("}]},"subject":{"reference":"Patient/p1"},"onsetDateTime":")" + onset + R"("}})";
}

// A Patient, a finished microneedling Encounter and `entries`.
std::string Record(const std::vector<std::string>& entries) {
    std::string text =
        R"({"resourceType":"Bundle","type":"collection","entry":[)"
        R"({"fullUrl":"http://ehr.example/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1","birthDate":"1990-04-12"}},)"
        R"({"fullUrl":"http://ehr.example/fhir/Encounter/enc1","resource":{"resourceType":"Encounter","id":"enc1","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"type":[{"text":"Microneedling"}],"subject":{"reference":"Patient/p1"},"period":{"start":"2026-11-20T10:00:00+01:00"}}})";
    for (const std::string& entry : entries) text += "," + entry;
    return text + "]}";
}

// Each rule found, with the references of its evidence in order.
std::map<std::string, std::vector<std::string>> Findings(const std::string& record) {
    fhir::IssueList issues;
    const fhir::Instant now = fhir::DateTime::Parse("2026-11-24T12:00:00Z")->Earliest();
    auto run = RecordAssessment::Run(Pack(), record, {"Encounter/enc1", "test"}, now, issues);
    for (const fhir::Issue& issue : issues) ADD_FAILURE() << fhir::FormatIssue(issue);
    std::map<std::string, std::vector<std::string>> found;
    if (!run) return found;
    EXPECT_TRUE(run->assessment().applies) << run->assessment().explanation;
    for (const Finding& f : run->assessment().findings) {
        auto& references = found[Pack().rules[f.rule].id];
        for (const Evidence& e : f.evidence) references.emplace_back(e.resource->reference);
    }
    return found;
}

TEST(Suppression, ActiveSkinCancerAndAnotherRecordsHistoryAreBothShown) {
    // An active melanoma (A3, absolute) and, in another record, a resolved basal cell carcinoma
    // (R17, relative, suppressedBy A3). Before, A3 silenced R17 and the history was not shown.
    auto found = Findings(Record({
        Condition("melanoma", "active", "http://snomed.info/sct", "93655004", "2026-10-01"),
        Condition("bcc", "resolved", "http://snomed.info/sct", "254701007", "2019-03-01"),
    }));
    ASSERT_TRUE(found.count("A3"));
    ASSERT_TRUE(found.count("R17"));
    EXPECT_EQ(found["A3"], std::vector<std::string>{"Condition/melanoma"});
    EXPECT_EQ(found["R17"], std::vector<std::string>{"Condition/bcc"});
}

TEST(Suppression, AFindingKeepsOnlyTheEvidenceTheSuppressorDoesNotShow) {
    // Herpes labialis: a resolved episode and an active outbreak. R1 (history, relative) would
    // rest on both; A1-herpes (active, absolute) shows the outbreak, so R1 keeps the history.
    auto found = Findings(Record({
        Condition("past", "resolved", "http://snomed.info/sct", "1475003", "2024-05-01"),
        Condition("now", "active", "http://hl7.org/fhir/sid/icd-10-cm", "B00.1", "2026-11-18"),
    }));
    ASSERT_TRUE(found.count("A1-herpes"));
    ASSERT_TRUE(found.count("R1"));
    EXPECT_EQ(found["A1-herpes"], std::vector<std::string>{"Condition/now"});
    EXPECT_EQ(found["R1"], std::vector<std::string>{"Condition/past"});
}

TEST(Suppression, TheSameRecordIsShownOnceByTheSuppressor) {
    // Only the active outbreak: R1 would rest on it too (ongoing herpes counts for the history
    // rule), but A1-herpes already shows it, so R1 is not reported.
    auto found = Findings(Record({
        Condition("now", "active", "http://hl7.org/fhir/sid/icd-10-cm", "B00.1", "2026-11-18"),
    }));
    EXPECT_TRUE(found.count("A1-herpes"));
    EXPECT_FALSE(found.count("R1"));
}

}  // namespace
}  // namespace microcare::rules
