#include "fhir/bundle.hpp"

#include <gtest/gtest.h>

namespace microcare::fhir {
namespace {

constexpr const char* kBundle = R"({
  "resourceType": "Bundle", "type": "searchset",
  "entry": [
    {"fullUrl": "http://ehr.example/fhir/Patient/p1",
     "resource": {"resourceType": "Patient", "id": "p1"}},
    {"fullUrl": "urn:uuid:0b3b1ed4-0c5e-4bb8-a3ef-8c2c4b7b6f00",
     "resource": {"resourceType": "Encounter", "subject": {"reference": "Patient/p1"}}},
    {"fullUrl": "http://ehr.example/fhir/MedicationRequest/m1",
     "resource": {"resourceType": "MedicationRequest", "id": "m1",
       "contained": [{"resourceType": "Medication", "id": "med", "code": {"text": "x"}}],
       "medicationReference": {"reference": "#med"},
       "subject": {"reference": "Patient/p1/_history/3"}}},
    {"fullUrl": "http://other.example/fhir/Patient/p1",
     "resource": {"resourceType": "Patient", "id": "p1-other"}},
    {"request": {"method": "DELETE", "url": "Patient/gone"}}
  ]})";

class BundleIndexTest : public ::testing::Test {
protected:
    void SetUp() override {
        doc_ = JsonDocument::Parse(kBundle, issues_);
        ASSERT_TRUE(doc_);
        index_.emplace(doc_->Root(), issues_);
        ASSERT_TRUE(issues_.empty());
    }
    IssueList issues_;
    std::optional<JsonDocument> doc_;
    std::optional<BundleIndex> index_;
};

TEST_F(BundleIndexTest, IndexesEveryResourceEntry) {
    ASSERT_EQ(index_->entries().size(), 4u);  // the DELETE entry has no resource
    EXPECT_EQ(index_->entries()[2].Path(), "Bundle.entry[2].resource");
    EXPECT_EQ(index_->bundle_type(), "searchset");
}

TEST_F(BundleIndexTest, ResolvesRelativeAbsoluteUuidAndVersionedReferences) {
    const auto& entries = index_->entries();
    EXPECT_EQ(index_->Resolve("Patient/p1", &entries[2]), &entries[0]);
    EXPECT_EQ(index_->Resolve("http://ehr.example/fhir/Patient/p1"), &entries[0]);
    EXPECT_EQ(index_->Resolve("http://other.example/fhir/Patient/p1"), &entries[3]);
    EXPECT_EQ(index_->Resolve("urn:uuid:0b3b1ed4-0c5e-4bb8-a3ef-8c2c4b7b6f00"), &entries[1]);
    EXPECT_EQ(index_->Resolve("Patient/p1/_history/3", &entries[2]), &entries[0]);
    EXPECT_EQ(index_->Resolve("Patient/nobody"), nullptr);
    EXPECT_EQ(index_->Resolve("urn:uuid:00000000-0000-4000-8000-000000000000"), nullptr);
}

TEST_F(BundleIndexTest, ResolvesContainedResources) {
    Node medication = BundleIndex::ResolveContained(index_->entries()[2], "#med");
    EXPECT_EQ(medication["resourceType"].String(), "Medication");
    EXPECT_FALSE(BundleIndex::ResolveContained(index_->entries()[2], "#none").Exists());
}

TEST_F(BundleIndexTest, IdentityIsTypeAndIdOrTheFullUrl) {
    const auto& entries = index_->entries();
    EXPECT_EQ(BundleIndex::ReferenceTo(entries[0]), "Patient/p1");
    EXPECT_EQ(BundleIndex::ReferenceTo(entries[1]),
              "urn:uuid:0b3b1ed4-0c5e-4bb8-a3ef-8c2c4b7b6f00");
    EXPECT_EQ(index_->Identity("Patient/p1/_history/3", &entries[2]), "Patient/p1");
    // Another server's patient keeps its full URL, so it never equals one of this record.
    EXPECT_EQ(index_->Identity("https://elsewhere/fhir/Patient/p1"),
              "https://elsewhere/fhir/Patient/p1");
    EXPECT_EQ(index_->Resolve("https://elsewhere/fhir/Patient/p1"), nullptr);
}

TEST(BundleIndex, AbsoluteReferencesInARecordWithoutBasesStandForTypeAndId) {
    IssueList issues;
    auto doc = JsonDocument::Parse(
        R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"Patient","id":"p1"}}]})",
        issues);
    BundleIndex index(doc->Root(), issues);
    EXPECT_EQ(index.Identity("https://ehr.example/fhir/Patient/p1"), "Patient/p1");
}

TEST(TypeIdOf, ReducesReferences) {
    EXPECT_EQ(TypeIdOf("Patient/1"), "Patient/1");
    EXPECT_EQ(TypeIdOf("http://x/fhir/Patient/1/_history/2"), "Patient/1");
    EXPECT_EQ(TypeIdOf("urn:uuid:abc"), "");
    EXPECT_EQ(TypeIdOf("#c1"), "");
    EXPECT_EQ(TypeIdOf("patient/1"), "");
}

// Issue 7, item 5: `.` and `..` passed the id check and went into EHR URLs.
TEST(TypeIdOf, RefusesDotSegmentsAsIds) {
    EXPECT_EQ(TypeIdOf("Encounter/."), "");
    EXPECT_EQ(TypeIdOf("Encounter/.."), "");
    EXPECT_EQ(TypeIdOf("Patient/.."), "");
    EXPECT_EQ(TypeIdOf("http://x/fhir/Patient/../_history/1"), "");
    EXPECT_EQ(TypeIdOf("Patient/..."), "Patient/...");  // an ordinary segment
}

TEST(BundleIndex, ReportsEntriesThatAreNotResources) {
    IssueList issues;
    auto doc = JsonDocument::Parse(
        R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"id":"x"}},{"resource":[1]}]})",
        issues);
    BundleIndex index(doc->Root(), issues);
    ASSERT_EQ(issues.size(), 2u);
    EXPECT_EQ(issues.issues()[0].path, "Bundle.entry[0].resource");
    EXPECT_EQ(issues.issues()[1].path, "Bundle.entry[1].resource");
}

TEST(BundleIndex, ReadsALoneResourceAsAOneEntryRecord) {
    IssueList issues;
    auto doc = JsonDocument::Parse(R"({"resourceType":"Condition","id":"c"})", issues);
    BundleIndex index(doc->Root(), issues);
    ASSERT_EQ(index.entries().size(), 1u);
    EXPECT_FALSE(index.is_bundle());
    EXPECT_EQ(index.entries()[0].Path(), "Condition");
}

}  // namespace
}  // namespace microcare::fhir
