#include "fhir/audit_event.hpp"

#include <gtest/gtest.h>

namespace microcare::fhir {
namespace {

std::string Written(const AuditEventValue& value) {
    JsonWriter out;
    WriteAuditEvent(out, value);
    return out.Take();
}

AuditEventValue Sample() {
    AuditEventValue value;
    value.what = "urn:uuid:4b1c7f0e-0000-4000-8000-000000000001";
    value.patient = "Patient/pat-1";
    value.recorded = DateTime::Parse("2026-12-05T10:00:00Z")->Earliest();
    value.software = "MicroCare 0.1.0";
    value.ehr = "https://ehr.example/fhir";
    value.pack = "microcare-microneedling 1.0.0 2bbc";
    value.job = "17";
    return value;
}

TEST(AuditEventTest, ACreateFollowsTheBalpPatternWithIdsOnly) {
    IssueList issues;
    auto doc = JsonDocument::Parse(Written(Sample()), issues);
    ASSERT_TRUE(doc);
    const Node event = doc->Root();
    EXPECT_EQ(event["resourceType"].String(), "AuditEvent");
    EXPECT_EQ(event["type"]["code"].String(), "rest");
    EXPECT_EQ(event["subtype"][0]["code"].String(), "create");
    EXPECT_EQ(event["action"].String(), "C");
    EXPECT_EQ(event["recorded"].String(), "2026-12-05T10:00:00Z");
    EXPECT_EQ(event["outcome"].String(), "0");
    // MicroCare asked (source role, requestor); the EHR made the write (destination role).
    EXPECT_EQ(event["agent"][0]["type"]["coding"][0]["code"].String(), "110153");
    EXPECT_EQ(event["agent"][0]["requestor"].Bool(), true);
    EXPECT_EQ(event["agent"][1]["type"]["coding"][0]["code"].String(), "110152");
    EXPECT_EQ(event["agent"][1]["requestor"].Bool(), false);
    EXPECT_EQ(event["agent"][1]["network"]["address"].String(), "https://ehr.example/fhir");
    EXPECT_EQ(event["source"]["observer"]["display"].String(), "MicroCare 0.1.0");
    // The written resource, with the pack and the job; then the patient.
    EXPECT_EQ(event["entity"][0]["what"]["reference"].String(), Sample().what);
    EXPECT_EQ(event["entity"][0]["role"]["code"].String(), "4");
    EXPECT_EQ(event["entity"][0]["detail"][0]["valueString"].String(), Sample().pack);
    EXPECT_EQ(event["entity"][0]["detail"][1]["valueString"].String(), "17");
    EXPECT_EQ(event["entity"][1]["what"]["reference"].String(), "Patient/pat-1");
    EXPECT_EQ(event["entity"][1]["role"]["code"].String(), "1");
}

TEST(AuditEventTest, AnUpdateSaysSo) {
    AuditEventValue value = Sample();
    value.update = true;
    value.what = "CarePlan/12";
    IssueList issues;
    auto doc = JsonDocument::Parse(Written(value), issues);
    ASSERT_TRUE(doc);
    EXPECT_EQ(doc->Root()["subtype"][0]["code"].String(), "update");
    EXPECT_EQ(doc->Root()["action"].String(), "U");
}

}  // namespace
}  // namespace microcare::fhir
