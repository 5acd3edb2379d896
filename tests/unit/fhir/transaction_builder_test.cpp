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
    issue.patient = "Patient/pat-1";
    issue.implicated = {"MedicationStatement/ms-1"};
    value.issues.push_back(issue);
    AuditEventValue& events = value.audit_events.emplace();
    events.recorded = DateTime::Parse("2026-12-05T10:00:00Z")->Earliest();
    events.software = "MicroCare 0.1.0";
    events.ehr = "https://ehr.example/fhir";
    events.pack = "microcare-microneedling 1.0.0 2bbc";
    events.job = "17";
    return value;
}

struct Written {
    JsonDocument doc;
    std::vector<Node> entries;
};

Written Write(const TransactionValue& value) {
    JsonWriter out;
    WriteTransaction(out, value);
    IssueList issues;
    auto doc = JsonDocument::Parse(out.Take(), issues);
    EXPECT_TRUE(doc);
    Written written{std::move(*doc), {}};
    const Node entries = written.doc.Root()["entry"];
    for (std::size_t i = 0; i < entries.Size(); ++i) written.entries.push_back(entries[i]);
    return written;
}

TEST(TransactionAuditEventsTest, EachCreateIsFollowedByItsAuditEvent) {
    const Written w = Write(Sample());
    ASSERT_EQ(w.entries.size(), 4u);
    for (std::size_t i : {0u, 2u}) {
        const Node written = w.entries[i];
        const Node audit = w.entries[i + 1];
        EXPECT_EQ(audit["resource"]["resourceType"].String(), "AuditEvent");
        EXPECT_EQ(audit["resource"]["action"].String(), "C");
        // The entity is the entry's urn:uuid, which the EHR resolves to the new resource.
        EXPECT_EQ(audit["resource"]["entity"][0]["what"]["reference"].String(),
                  written["fullUrl"].String());
        EXPECT_EQ(audit["resource"]["entity"][1]["what"]["reference"].String(), "Patient/pat-1");
        EXPECT_EQ(audit["request"]["method"].String(), "POST");
        EXPECT_EQ(audit["request"]["url"].String(), "AuditEvent");
        // Conditional on the key it carries: sent twice, recorded once.
        const std::string key(audit["resource"]["entity"][0]["name"].String());
        EXPECT_EQ(audit["request"]["ifNoneExist"].String(), "entity-name:exact=" + key);
        const std::string type(written["resource"]["resourceType"].String());
        const std::string identifier(written["resource"]["identifier"][0]["value"].String());
        EXPECT_TRUE(key.starts_with("microcare:create:" + type + ":" + identifier + ":")) << key;
    }
}

TEST(TransactionAuditEventsTest, TheKeyNamesTheWriteNotTheMoment) {
    TransactionValue later = Sample();
    later.audit_events->recorded = DateTime::Parse("2026-12-06T10:00:00Z")->Earliest();
    later.audit_events->job = "18";
    const Written a = Write(Sample());
    const Written b = Write(later);
    EXPECT_EQ(a.entries[1]["request"]["ifNoneExist"].String(),
              b.entries[1]["request"]["ifNoneExist"].String());
    // Other content is another write, with its own record.
    TransactionValue changed = Sample();
    changed.care_plan->description = "Session 1 of 4";
    const Written c = Write(changed);
    EXPECT_NE(a.entries[1]["request"]["ifNoneExist"].String(),
              c.entries[1]["request"]["ifNoneExist"].String());
    // Keys end in a digest of one length, so none is the start of another.
    const std::string key(a.entries[1]["resource"]["entity"][0]["name"].String());
    EXPECT_EQ(key.size() - key.rfind(':') - 1, 36u);
}

TEST(TransactionAuditEventsTest, AnUpdateNamesTheResourceAndTheVersionItReplaces) {
    TransactionValue value = Sample();
    value.care_plan->on_ehr = {OnEhr::Write::kUpdate, "cp-9", "3", "2026-12-01T10:00:00Z"};
    value.issues[0].on_ehr = {OnEhr::Write::kNone, "di-4", "1", ""};
    const Written w = Write(value);
    ASSERT_EQ(w.entries.size(), 2u);  // the unchanged DetectedIssue: neither written nor audited
    const Node audit = w.entries[1]["resource"];
    EXPECT_EQ(audit["action"].String(), "U");
    EXPECT_EQ(audit["entity"][0]["what"]["reference"].String(), "CarePlan/cp-9");
    EXPECT_TRUE(std::string(audit["entity"][0]["name"].String())
                    .starts_with("microcare:update:CarePlan/cp-9:3:"));
}

TEST(TransactionAuditEventsTest, ARetiredResourceIsAnUpdateOfIt) {
    TransactionValue value = Sample();
    value.care_plan->on_ehr = {OnEhr::Write::kNone, "cp-9", "3", ""};
    value.issues.clear();
    IssueList issues;
    auto old =
        JsonDocument::Parse(R"({"resourceType":"DetectedIssue","id":"di-2","status":"final",)"
                            R"("patient":{"reference":"Patient/pat-1"},"detail":"R11"})",
                            issues);
    ASSERT_TRUE(old);
    value.retired.push_back({"DetectedIssue", "di-2", "5", old->Root(), "Retired by pack B."});
    const Written w = Write(value);
    ASSERT_EQ(w.entries.size(), 2u);
    EXPECT_EQ(w.entries[0]["resource"]["status"].String(), "cancelled");
    const Node audit = w.entries[1]["resource"];
    EXPECT_EQ(audit["action"].String(), "U");
    EXPECT_EQ(audit["entity"][0]["what"]["reference"].String(), "DetectedIssue/di-2");
    EXPECT_EQ(audit["entity"][1]["what"]["reference"].String(), "Patient/pat-1");
    EXPECT_TRUE(std::string(audit["entity"][0]["name"].String())
                    .starts_with("microcare:retire:DetectedIssue/di-2:5:"));
}

TEST(TransactionAuditEventsTest, NoneWhenNotAsked) {
    TransactionValue value = Sample();
    value.audit_events.reset();
    const Written w = Write(value);
    ASSERT_EQ(w.entries.size(), 2u);
    for (const Node& entry : w.entries)
        EXPECT_NE(entry["resource"]["resourceType"].String(), "AuditEvent");
}

}  // namespace
}  // namespace microcare::fhir
