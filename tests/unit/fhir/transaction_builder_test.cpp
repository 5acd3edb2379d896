#include "fhir/transaction_builder.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "fhir/audit_event.hpp"

namespace microcare::fhir {
namespace {

constexpr std::string_view kSystem = "https://microcare.example/fhir/sid/generated";

TransactionValue Sample() {
    TransactionValue value;
    value.provenance.pack_tag = {"https://microcare.example/fhir/CodeSystem/rule-pack",
                                 "microcare-microneedling", "Microneedling"};
    value.provenance.pack_version = "1.0.0";
    value.provenance.pack_sha256 = "2bbc";
    value.provenance.pack_uri = "https://microcare.example/rules/microcare-microneedling";
    CarePlanValue plan;
    plan.identifier = {std::string(kSystem), "enc-1:careplan"};
    plan.title = "Aftercare";
    plan.description = "Session 1 of 3";
    plan.subject = "Patient/pat-1";
    plan.encounter = "Encounter/enc-1";
    value.care_plan = plan;
    DetectedIssueValue issue;
    issue.identifier = {std::string(kSystem), "enc-1:issue:R4"};
    issue.title = "R4 Isotretinoin";
    issue.severity = "moderate";
    issue.patient = "Patient/pat-2";
    issue.implicated = {"MedicationStatement/ms-1"};
    value.issues.push_back(issue);
    return value;
}

AuditEventValue Common() {
    AuditEventValue events;
    events.recorded = DateTime::Parse("2026-12-05T10:00:00Z")->Earliest();
    events.software = "MicroCare 0.1.0";
    events.ehr = "https://ehr.example/fhir";
    events.pack = "microcare-microneedling 1.0.0 2bbc";
    events.job = "17";
    return events;
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

JsonDocument Transaction(const TransactionValue& value) {
    JsonWriter out;
    WriteTransaction(out, value);
    return Parsed(out.Take());
}

JsonDocument Batch(const std::vector<WrittenVersion>& written) {
    JsonWriter out;
    WriteAuditEventBatch(out, Common(), written);
    return Parsed(out.Take());
}

// The entries WriteTransaction writes, in order, unchanged ones left out.
TEST(TransactionEntryWritesTest, FollowTheEntriesWritten) {
    using Entry = TransactionValue::EntryWrite;
    TransactionValue value = Sample();
    EXPECT_EQ(value.EntryWrites(),
              (std::vector<Entry>{{false, "Patient/pat-1"}, {false, "Patient/pat-2"}}));
    EXPECT_EQ(Entries(Transaction(value)).size(), 2u);
    value.care_plan->on_ehr = {OnEhr::Write::kNone, "cp-9", "3", ""};
    value.issues[0].on_ehr = {OnEhr::Write::kUpdate, "di-1", "4", ""};
    IssueList issues;
    auto old = JsonDocument::Parse(R"({"resourceType":"Task","id":"t-2","status":"requested",)"
                                   R"("for":{"reference":"Patient/pat-3"}})",
                                   issues);
    ASSERT_TRUE(old);
    value.retired.push_back({"Task", "t-2", "5", old->Root(), "Retired by pack B."});
    EXPECT_EQ(value.EntryWrites(),
              (std::vector<Entry>{{true, "Patient/pat-2"}, {true, "Patient/pat-3"}}));
    const JsonDocument transaction = Transaction(value);  // the entries view into it
    const auto entries = Entries(transaction);
    ASSERT_EQ(entries.size(), 2u);
    EXPECT_EQ(entries[0]["request"]["method"].String(), "PUT");
    EXPECT_EQ(entries[1]["resource"]["resourceType"].String(), "Task");
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
    AuditEventValue later = Common();
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
