#include "fhir/patient_record.hpp"

#include <gtest/gtest.h>

namespace microcare::fhir {
namespace {

struct Parsed {
    IssueList issues;
    std::optional<JsonDocument> doc;
    std::optional<BundleIndex> index;
    PatientRecord record;
};

std::unique_ptr<Parsed> Read(const std::string& entries) {
    auto p = std::make_unique<Parsed>();
    p->doc = JsonDocument::Parse(
        R"({"resourceType":"Bundle","type":"collection","entry":[)" + entries + "]}", p->issues);
    EXPECT_TRUE(p->doc);
    p->index.emplace(p->doc->Root(), p->issues);
    p->record = ReadPatientRecord(*p->index, p->issues);
    return p;
}

Instant At(const char* text) { return DateTime::Parse(text)->Earliest(); }

TEST(PatientRecord, ConditionStatusesDatesAndDefaults) {
    auto p = Read(R"(
      {"resource":{"resourceType":"Condition","id":"c1","subject":{"reference":"Patient/p"},
        "clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"resolved"}]},
        "verificationStatus":{"coding":[{"code":"confirmed"}]},
        "code":{"coding":[{"system":"http://snomed.info/sct","code":"33659008","display":"Keloid"}],"text":"keloid scar"},
        "onsetDateTime":"2019","abatementDateTime":"2021-06"}},
      {"resource":{"resourceType":"Condition","id":"c2","subject":{"reference":"Patient/p"},
        "code":{"text":"x"},"recordedDate":"2026-11-01"}},
      {"resource":{"resourceType":"Condition","id":"c3","subject":{"reference":"Patient/p"},
        "code":{"text":"x"},"abatementString":"childhood"}})");
    ASSERT_TRUE(p->issues.empty());
    ASSERT_EQ(p->record.resources.size(), 3u);
    const ClinicalResource& c1 = p->record.resources[0];
    EXPECT_EQ(c1.reference, "Condition/c1");
    EXPECT_EQ(c1.subject, "Patient/p");
    EXPECT_EQ(c1.status, "resolved");
    EXPECT_EQ(c1.verification_status, "confirmed");
    ASSERT_EQ(c1.code.codings.size(), 1u);
    EXPECT_EQ(c1.code.codings[0].code, "33659008");
    EXPECT_EQ(c1.start->element, "onsetDateTime");
    EXPECT_EQ(c1.end->element, "abatementDateTime");
    EXPECT_EQ(c1.end->Latest(0), At("2021-06-30T23:59:59.999Z"));
    // No clinicalStatus: active when not abated, resolved when it is.
    EXPECT_EQ(p->record.resources[1].status, "active");
    EXPECT_TRUE(p->record.resources[1].status_defaulted);
    EXPECT_EQ(p->record.resources[1].end->element, "recordedDate");
    EXPECT_EQ(p->record.resources[2].status, "resolved");
}

TEST(PatientRecord, MedicationRequestEstimatesTheEndOfSupply) {
    auto p = Read(R"(
      {"resource":{"resourceType":"MedicationRequest","id":"m1","status":"completed","intent":"order",
        "subject":{"reference":"Patient/p"},
        "medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"197843"}]},
        "authoredOn":"2026-10-01",
        "dispenseRequest":{"numberOfRepeatsAllowed":2,
          "expectedSupplyDuration":{"value":30,"unit":"days","system":"http://unitsofmeasure.org","code":"d"}}}},
      {"resource":{"resourceType":"MedicationRequest","id":"m2","status":"active","intent":"order",
        "subject":{"reference":"Patient/p"},"medicationReference":{"reference":"Medication/med"},
        "dispenseRequest":{"validityPeriod":{"end":"2027-01-01"}}}},
      {"fullUrl":"http://x/Medication/med","resource":{"resourceType":"Medication","id":"med",
        "code":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"1364435"}]}}})");
    ASSERT_TRUE(p->issues.empty()) << p->issues.issues()[0].message;
    const ClinicalResource& m1 = p->record.resources[0];
    ASSERT_TRUE(m1.end);
    EXPECT_TRUE(m1.end->estimated);
    // 2026-10-01 + 30 d x 3 = 2026-12-30, the latest instant of that day.
    EXPECT_EQ(m1.end->Latest(0), At("2026-12-30T23:59:59.999Z"));
    const ClinicalResource& m2 = p->record.resources[1];
    ASSERT_EQ(m2.code.codings.size(), 1u);
    EXPECT_EQ(m2.code.codings[0].code, "1364435");
    EXPECT_EQ(m2.end->element, "dispenseRequest.validityPeriod.end");
}

TEST(PatientRecord, ObservationValuesAndProcedureEncounter) {
    auto p = Read(R"(
      {"resource":{"resourceType":"Observation","id":"o1","status":"final","subject":{"reference":"Patient/p"},
        "code":{"coding":[{"system":"http://loinc.org","code":"4548-4"}]},
        "effectiveDateTime":"2026-09-01T08:00:00Z","valueQuantity":{"value":8.50,"unit":"%"},
        "interpretation":[{"coding":[{"code":"H"}]}]}},
      {"resource":{"resourceType":"Procedure","id":"pr","status":"completed","subject":{"reference":"Patient/p"},
        "encounter":{"reference":"Encounter/e1"},"code":{"text":"Microneedling"},
        "performedPeriod":{"start":"2026-11-20T10:00:00+01:00","end":"2026-11-20T11:00:00+01:00"}}})");
    ASSERT_TRUE(p->issues.empty());
    const ClinicalResource& o = p->record.resources[0];
    ASSERT_TRUE(o.quantity);
    EXPECT_DOUBLE_EQ(o.quantity->value, 8.5);
    EXPECT_EQ(o.quantity->value_text, "8.50");
    EXPECT_EQ(o.interpretation.size(), 1u);
    const ClinicalResource& pr = p->record.resources[1];
    EXPECT_EQ(pr.encounter, "Encounter/e1");
    EXPECT_EQ(pr.end->element, "performedPeriod.end");
}

TEST(PatientRecord, ReportsMalformedElementsWithTheirPathAndWithoutTheValue) {
    auto p = Read(R"(
      {"resource":{"resourceType":"Condition","subject":{"reference":"Patient/p"},
        "code":{"coding":{"code":"x"}},"onsetDateTime":"2024-13-01"}},
      {"resource":{"resourceType":"Patient","birthDate":"1990-02-30"}})");
    ASSERT_EQ(p->issues.size(), 3u);
    EXPECT_EQ(p->issues.issues()[0].path, "Bundle.entry[0].resource.code.coding");
    EXPECT_EQ(p->issues.issues()[1].path, "Bundle.entry[0].resource.onsetDateTime");
    EXPECT_EQ(p->issues.issues()[2].path, "Bundle.entry[1].resource.birthDate");
    for (const Issue& issue : p->issues) {
        EXPECT_EQ(issue.message.find("1990"), std::string::npos) << "patient data in a message";
        EXPECT_EQ(issue.message.find("2024-13"), std::string::npos) << "patient data in a message";
    }
}

}  // namespace
}  // namespace microcare::fhir
