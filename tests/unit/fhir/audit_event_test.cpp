#include "fhir/audit_event.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace microcare::fhir {
namespace {

std::string Written(const AuditEventValue& value) {
    JsonWriter out;
    WriteAuditEvent(out, value);
    return out.Take();
}

AuditEventValue Sample() {
    AuditEventValue value;
    value.what = "CarePlan/cp-1/_history/1";
    value.patient = "Patient/pat-1";
    value.recorded = DateTime::Parse("2026-12-05T10:00:00Z")->Earliest();
    value.software = "MicroCare 0.1.0";
    value.ehr = "https://ehr.example/fhir";
    value.pack = "microcare-microneedling 1.0.0 2bbc";
    value.job = "17";
    return value;
}

std::vector<Node> Entries(const JsonDocument& doc) {
    std::vector<Node> entries;
    const Node all = doc.Root()["entry"];
    for (std::size_t i = 0; i < all.Size(); ++i) entries.push_back(all[i]);
    return entries;
}

JsonDocument Parsed(const std::string& json) {
    IssueList issues;
    auto doc = JsonDocument::Parse(json, issues);
    EXPECT_TRUE(doc) << json;
    return std::move(*doc);
}

JsonDocument Batch(const std::vector<WrittenVersion>& written) {
    JsonWriter out;
    WriteAuditEventBatch(out, Sample(), written);
    return Parsed(out.Take());
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

TEST(WrittenVersionsTest, ReadTheLocationsOfATransactionResponse) {
    const JsonDocument response = Parsed(R"({"resourceType":"Bundle","type":"transaction-response",
        "entry":[{"response":{"status":"201 Created",
                              "location":"https://ehr.example/fhir/CarePlan/cp-1/_history/1"}},
                 {"response":{"status":"200 OK","location":"DetectedIssue/di-4","etag":"W/\"3\""}}]})");
    IssueList issues;
    auto written =
        WrittenVersions(response.Root(), {{false, "Patient/a"}, {true, "Patient/b"}}, issues);
    ASSERT_TRUE(written) << (issues.empty() ? "" : FormatIssue(*issues.begin()));
    ASSERT_EQ(written->size(), 2u);
    EXPECT_EQ((*written)[0].what, "CarePlan/cp-1/_history/1");
    EXPECT_EQ((*written)[0].patient, "Patient/a");
    EXPECT_FALSE((*written)[0].update);
    EXPECT_EQ((*written)[1].what, "DetectedIssue/di-4/_history/3");
    EXPECT_TRUE((*written)[1].update);
}

TEST(WrittenVersionsTest, TheVersionMayComeFromTheResourceTheEntryReturns) {
    // Medplum answers Type/id without an etag and returns the resource with its meta.
    const JsonDocument response = Parsed(R"({"resourceType":"Bundle","type":"transaction-response",
        "entry":[{"response":{"status":"201 Created","location":"CarePlan/cp-1"},
                  "resource":{"resourceType":"CarePlan","id":"cp-1","meta":{"versionId":"7f3a"}}}]})");
    IssueList issues;
    auto written = WrittenVersions(response.Root(), {{false, "Patient/a"}}, issues);
    ASSERT_TRUE(written) << (issues.empty() ? "" : FormatIssue(*issues.begin()));
    ASSERT_EQ(written->size(), 1u);
    EXPECT_EQ((*written)[0].what, "CarePlan/cp-1/_history/7f3a");
}

TEST(WrittenVersionsTest, AResponseThatDoesNotSayWhatWasWrittenIsRefused) {
    IssueList issues;
    const JsonDocument fewer = Parsed(
        R"({"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201","location":"CarePlan/1/_history/1"}}]})");
    EXPECT_FALSE(
        WrittenVersions(fewer.Root(), {{false, "Patient/a"}, {false, "Patient/b"}}, issues));
    const JsonDocument unversioned = Parsed(
        R"({"resourceType":"Bundle","type":"transaction-response","entry":[{"response":{"status":"201","location":"CarePlan/1"}}]})");
    issues = {};
    EXPECT_FALSE(WrittenVersions(unversioned.Root(), {{false, "Patient/a"}}, issues));
    ASSERT_FALSE(issues.empty());
    EXPECT_EQ(issues.begin()->path, "Bundle.entry[0].response.location");
    const JsonDocument other = Parsed(R"({"resourceType":"OperationOutcome"})");
    EXPECT_FALSE(WrittenVersions(other.Root(), {}, issues));
}

TEST(AuditEventBatchTest, OneConditionalCreatePerWrittenVersion) {
    const JsonDocument batch = Batch({{"CarePlan/cp-1/_history/1", "Patient/pat-1", false},
                                      {"DetectedIssue/di-4/_history/3", "Patient/pat-1", true}});
    EXPECT_EQ(batch.Root()["type"].String(), "batch");
    const auto entries = Entries(batch);
    ASSERT_EQ(entries.size(), 2u);
    const char* actions[] = {"C", "U"};
    for (std::size_t i = 0; i < 2; ++i) {
        const Node event = entries[i]["resource"];
        EXPECT_EQ(event["resourceType"].String(), "AuditEvent");
        EXPECT_EQ(event["action"].String(), actions[i]);
        EXPECT_EQ(event["entity"][1]["what"]["reference"].String(), "Patient/pat-1");
        EXPECT_EQ(entries[i]["request"]["method"].String(), "POST");
        EXPECT_EQ(entries[i]["request"]["url"].String(), "AuditEvent");
        const std::string key(event["entity"][0]["name"].String());
        EXPECT_EQ(entries[i]["request"]["ifNoneExist"].String(), "entity-name:exact=" + key);
    }
    EXPECT_EQ(entries[0]["resource"]["entity"][0]["what"]["reference"].String(),
              "CarePlan/cp-1/_history/1");
    EXPECT_EQ(entries[1]["resource"]["subtype"][0]["code"].String(), "update");
}

TEST(AuditEventBatchTest, TheKeyNamesTheVersionWrittenNotTheMoment) {
    const std::string key = AuditEventKey("CarePlan/cp-1/_history/1");
    EXPECT_TRUE(key.starts_with("microcare:CarePlan/cp-1/_history/1:")) << key;
    // A digest of one length ends every key, so none is the start of another.
    EXPECT_EQ(key.size() - key.rfind(':') - 1, 36u);
    EXPECT_FALSE(AuditEventKey("CarePlan/cp-1/_history/10").starts_with(key));
    EXPECT_NE(AuditEventKey("CarePlan/cp-1/_history/2"), key);
    AuditEventValue later = Sample();
    later.recorded = DateTime::Parse("2026-12-06T10:00:00Z")->Earliest();
    later.job = "18";
    JsonWriter out;
    WriteAuditEventBatch(out, later, {{"CarePlan/cp-1/_history/1", "Patient/pat-1"}});
    const JsonDocument again = Parsed(out.Take());
    EXPECT_EQ(
        Entries(again)[0]["request"]["ifNoneExist"].String(),
        Entries(Batch({{"CarePlan/cp-1/_history/1", "Patient/pat-1"}}))[0]["request"]["ifNoneExist"]
            .String());
}

}  // namespace
}  // namespace microcare::fhir
