#include "fhir/transaction_builder.hpp"

#include <gtest/gtest.h>

#include <vector>

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

// The transaction's entries, parsed.
JsonDocument Transaction(const TransactionValue& value) {
    JsonWriter out;
    WriteTransaction(out, value);
    IssueList issues;
    auto doc = JsonDocument::Parse(out.Take(), issues);
    EXPECT_TRUE(doc);
    return std::move(*doc);
}

// The entries WriteTransaction writes, in order, unchanged ones left out.
TEST(TransactionEntryWritesTest, FollowTheEntriesWritten) {
    using Entry = TransactionValue::EntryWrite;
    TransactionValue value = Sample();
    EXPECT_EQ(value.EntryWrites(),
              (std::vector<Entry>{{false, "Patient/pat-1"}, {false, "Patient/pat-2"}}));
    EXPECT_EQ(Transaction(value).Root()["entry"].Size(), 2u);
    value.care_plan->on_ehr = {OnEhr::Write::kNone, "cp-9", "3", "", ""};
    value.issues[0].on_ehr = {OnEhr::Write::kUpdate, "di-1", "4", "", ""};
    IssueList issues;
    auto old = JsonDocument::Parse(R"({"resourceType":"Task","id":"t-2","status":"requested",)"
                                   R"("for":{"reference":"Patient/pat-3"}})",
                                   issues);
    ASSERT_TRUE(old);
    value.retired.push_back({"Task", "t-2", "5", old->Root(), "Retired by pack B."});
    EXPECT_EQ(value.EntryWrites(),
              (std::vector<Entry>{{true, "Patient/pat-2"}, {true, "Patient/pat-3"}}));
    const JsonDocument transaction = Transaction(value);  // the entries view into it
    const Node entries = transaction.Root()["entry"];
    ASSERT_EQ(entries.Size(), 2u);
    EXPECT_EQ(entries[0]["request"]["method"].String(), "PUT");
    EXPECT_EQ(entries[1]["resource"]["resourceType"].String(), "Task");
}

}  // namespace
}  // namespace microcare::fhir
