// The revision of what MicroCare wrote for an encounter, without an EHR: values as
// BuildTransaction makes them, "written before" as a FHIR server stores a transaction's
// resources (with an id and a version), and what the revision leaves in the Bundle.
#include "rules/plan_revision.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>

#include "fhir/json.hpp"
#include "rules/plan_writer.hpp"

namespace microcare::rules {
namespace {

using fhir::OnEhr;

struct Found {
    std::string rule;
    std::string severity;  // high | moderate | low
};

RuleSet Pack(const std::string& version) {
    RuleSet pack;
    pack.id = "microneedling";
    pack.version = version;
    pack.sha256 = "0123456789abcdef0123456789abcdef";
    pack.title = "Microneedling";
    return pack;
}

fhir::IdentifierValue Id(const std::string& value) {
    return {std::string(kIdentifierSystem), value};
}

// A value for encounter `enc` as plan_writer shapes it: a Task when a finding is high or moderate.
fhir::TransactionValue Value(const RuleSet& pack, const std::vector<Found>& findings,
                             const std::string& enc = "e1", const std::string& hold = "active") {
    fhir::TransactionValue value;
    value.provenance.pack_tag = {std::string(kRulePackTagSystem), pack.id, pack.title};
    value.provenance.pack_version = pack.version;
    value.provenance.pack_uri = "https://microcare.example/fhir/rule-pack/" + pack.id;
    value.key_prefix = enc + ":";
    fhir::CarePlanValue plan;
    plan.identifier = Id(enc + ":careplan");
    plan.title = "Microneedling aftercare";
    plan.description = std::to_string(findings.size()) + " finding(s)";
    plan.subject = "Patient/p1";
    plan.encounter = "Encounter/" + enc;
    fhir::ActivityValue next;
    next.code = {"http://snomed.info/sct", "1", "Next session"};
    next.status = hold;
    next.description = "next session";
    plan.activities.push_back(next);
    value.care_plan = plan;
    std::string reason = "Contraindications found:";
    for (const Found& f : findings) {
        fhir::DetectedIssueValue issue;
        issue.identifier = Id(enc + ":issue:" + f.rule);
        issue.title = f.rule;
        issue.severity = f.severity;
        issue.patient = "Patient/p1";
        issue.implicated = {"Condition/c-" + f.rule};
        issue.detail = f.rule + " of rule pack " + pack.id + " " + pack.version + ".";
        value.issues.push_back(issue);
        if (f.severity != "low") reason += " " + f.rule + " (" + f.severity + ")";
    }
    if (reason != "Contraindications found:") {
        fhir::TaskValue task;
        task.identifier = Id(enc + ":task");
        task.priority = "routine";
        task.description = "Review";
        task.reason = reason;
        task.patient = "Patient/p1";
        task.encounter = "Encounter/" + enc;
        value.task = task;
    }
    return value;
}

// What a FHIR server holds after a transaction: each written resource with an id and a version.
class Ehr {
public:
    // Applies `value` as a server would (creates get ids; updates must match the version).
    void Apply(const fhir::TransactionValue& value) {
        fhir::JsonWriter writer;
        fhir::WriteTransaction(writer, value);
        const std::string text = writer.Take();
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(text, issues);
        const fhir::Node entries = doc->Root()["entry"];
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            const fhir::Node request = entries[i]["request"];
            std::string key = std::string(request["url"].String());
            int version = 1;
            if (request["method"].String() == "PUT") {
                ASSERT_TRUE(held_.contains(key)) << key;
                ASSERT_EQ(std::string(request["ifMatch"].String()),
                          "W/\"" + std::to_string(versions_[key]) + "\"");
                version = versions_[key] + 1;
            } else {
                key += "/n" + std::to_string(++next_);
            }
            versions_[key] = version;
            held_[key] = Stamp(entries[i]["resource"], key.substr(key.find('/') + 1), version);
        }
    }

    // Adds a resource as it is (someone else's, or another encounter's).
    void Add(const std::string& key, const std::string& json) {
        held_[key] = json;
        versions_[key] = 1;
    }

    // Read back, as the worker reads it: MicroCare's own resources only.
    std::vector<WrittenResource> Written() {
        std::vector<WrittenResource> written;
        for (const auto& [key, json] : held_) {
            fhir::IssueList issues;
            docs_.push_back(*fhir::JsonDocument::Parse(json, issues));
            if (auto w = ReadWritten(docs_.back().Root())) written.push_back(*w);
        }
        return written;
    }

    fhir::Node Get(const std::string& key) {
        fhir::IssueList issues;
        docs_.push_back(*fhir::JsonDocument::Parse(held_.at(key), issues));
        return docs_.back().Root();
    }

    std::string KeyOf(const std::string& identifier) {
        for (const WrittenResource& w : Written()) {
            if (w.identifier == identifier) return w.resource_type + "/" + w.id;
        }
        return {};
    }

private:
    static std::string Stamp(fhir::Node resource, const std::string& id, int version) {
        fhir::JsonWriter out;
        out.StartObject();
        resource.ForEachMember([&](std::string_view name, fhir::Node member) {
            if (name == "id" || name == "meta") return;
            out.Key(name);
            out.Value(member);
        });
        out.Field("id", id);
        out.Key("meta");
        out.StartObject();
        out.Field("versionId", std::to_string(version));
        out.Key("tag");
        out.Value(resource["meta"]["tag"]);
        out.EndObject();
        out.EndObject();
        return out.Take();
    }

    std::map<std::string, std::string> held_;
    std::map<std::string, int> versions_;
    std::deque<fhir::JsonDocument> docs_;
    int next_ = 0;
};

Change ChangeOf(const std::vector<ResourceChange>& changes, const std::string& identifier) {
    for (const ResourceChange& c : changes) {
        if (c.identifier == identifier) return c.change;
    }
    ADD_FAILURE() << "no change recorded for " << identifier;
    return Change::kUnchanged;
}

class PlanRevisionTest : public ::testing::Test {
protected:
    // Assesses under `pack` with `findings` and writes what the revision leaves; its changes.
    std::vector<ResourceChange> Assess(const RuleSet& pack, const std::vector<Found>& findings,
                                       const std::string& hold = "active") {
        value_ = Value(pack, findings, "e1", hold);
        auto changes = ReviseTransaction(pack, value_, ehr_.Written());
        ExpectDigestsAsWritten(value_);
        ehr_.Apply(value_);
        return changes;
    }

    // The revision hands its digests on so that they are not computed twice: they must be the
    // ones the transaction would carry had it computed them itself.
    static void ExpectDigestsAsWritten(const fhir::TransactionValue& revised) {
        fhir::TransactionValue recomputed = revised;
        if (recomputed.care_plan) {
            EXPECT_FALSE(recomputed.care_plan->on_ehr.digest.empty());
            recomputed.care_plan->on_ehr.digest.clear();
        }
        for (fhir::DetectedIssueValue& issue : recomputed.issues) issue.on_ehr.digest.clear();
        if (recomputed.task) recomputed.task->on_ehr.digest.clear();
        fhir::JsonWriter carried, computed;
        fhir::WriteTransaction(carried, revised);
        fhir::WriteTransaction(computed, recomputed);
        EXPECT_EQ(carried.Take(), computed.Take());
    }

    Ehr ehr_;
    fhir::TransactionValue value_;
    const RuleSet a_ = Pack("1.0.0");
    const RuleSet b_ = Pack("1.0.1");
};

TEST_F(PlanRevisionTest, AFirstAssessmentCreatesEverythingByConditionalCreate) {
    auto changes = Assess(a_, {{"R1", "high"}, {"R2", "low"}});
    ASSERT_EQ(changes.size(), 4u);
    for (const ResourceChange& c : changes) EXPECT_EQ(c.change, Change::kCreated) << c.identifier;
    EXPECT_EQ(value_.care_plan->on_ehr.write, OnEhr::Write::kCreate);
    EXPECT_TRUE(value_.retired.empty());
}

TEST_F(PlanRevisionTest, TheSameAssessmentAgainWritesNothing) {
    Assess(a_, {{"R1", "high"}, {"R2", "low"}});
    auto changes = Assess(a_, {{"R1", "high"}, {"R2", "low"}});
    EXPECT_FALSE(value_.HasWrites());
    for (const ResourceChange& c : changes) EXPECT_EQ(c.change, Change::kUnchanged) << c.identifier;
    EXPECT_EQ(ehr_.Written().size(), 4u);
}

TEST_F(PlanRevisionTest, ANewPackRevisesInPlaceAndTheNextRunWritesNothing) {
    Assess(a_, {{"R1", "moderate"}, {"R2", "low"}});
    const std::string plan = ehr_.KeyOf("e1:careplan");
    const std::string removed = ehr_.KeyOf("e1:issue:R2");
    // Pack B: R1 becomes absolute, R2 is gone, R3 is new; the next session goes on hold.
    auto changes = Assess(b_, {{"R1", "high"}, {"R3", "low"}}, "on-hold");
    EXPECT_EQ(ChangeOf(changes, "e1:careplan"), Change::kUpdated);
    EXPECT_EQ(ChangeOf(changes, "e1:issue:R1"), Change::kUpdated);
    EXPECT_EQ(ChangeOf(changes, "e1:issue:R2"), Change::kRetired);
    EXPECT_EQ(ChangeOf(changes, "e1:issue:R3"), Change::kCreated);
    EXPECT_EQ(ChangeOf(changes, "e1:task"), Change::kUpdated);

    // One of each, the CarePlan in place with B's tag and its activity on hold.
    EXPECT_EQ(ehr_.Written().size(), 5u);
    EXPECT_EQ(ehr_.KeyOf("e1:careplan"), plan);
    const fhir::Node care_plan = ehr_.Get(plan);
    EXPECT_EQ(care_plan["meta"]["tag"][0]["version"].String(), "1.0.1");
    EXPECT_EQ(care_plan["meta"]["versionId"].String(), "2");
    EXPECT_EQ(care_plan["activity"][0]["detail"]["status"].String(), "on-hold");
    const fhir::Node amended = ehr_.Get(ehr_.KeyOf("e1:issue:R1"));
    EXPECT_EQ(amended["status"].String(), "amended");
    EXPECT_EQ(amended["severity"].String(), "high");
    const fhir::Node retired = ehr_.Get(removed);
    EXPECT_EQ(retired["status"].String(), "cancelled");
    EXPECT_NE(retired["detail"].String().find("Retired by rule pack microneedling 1.0.1"),
              std::string_view::npos)
        << retired["detail"].String();
    EXPECT_EQ(retired["meta"]["tag"][0]["version"].String(), "1.0.1");
    EXPECT_EQ(ehr_.Get(ehr_.KeyOf("e1:task"))["reasonCode"]["text"].String(),
              "Contraindications found: R1 (high)");

    changes = Assess(b_, {{"R1", "high"}, {"R3", "low"}}, "on-hold");
    EXPECT_FALSE(value_.HasWrites()) << DescribeChanges(changes);
    EXPECT_EQ(ChangeOf(changes, "e1:issue:R1"), Change::kUnchanged);
}

TEST_F(PlanRevisionTest, TheReviewTaskIsCancelledWhenNothingIsLeftToReview) {
    Assess(a_, {{"R1", "moderate"}});
    auto changes = Assess(b_, {{"R1", "low"}});
    EXPECT_EQ(ChangeOf(changes, "e1:task"), Change::kRetired);
    const fhir::Node task = ehr_.Get(ehr_.KeyOf("e1:task"));
    EXPECT_EQ(task["status"].String(), "cancelled");
    EXPECT_NE(task["statusReason"]["text"].String().find("1.0.1"), std::string_view::npos);
    // Needed again later: the same Task is reopened, not a second one made.
    changes = Assess(b_, {{"R1", "moderate"}});
    EXPECT_EQ(ChangeOf(changes, "e1:task"), Change::kUpdated);
    EXPECT_EQ(ehr_.Get(ehr_.KeyOf("e1:task"))["status"].String(), "requested");
    EXPECT_EQ(ehr_.Written().size(), 3u);
}

TEST_F(PlanRevisionTest, AnAmendedSeverityAloneStillGuardsTheCarePlansVersion) {
    Assess(a_, {{"R1", "moderate"}});
    auto changes = Assess(a_, {{"R1", "high"}});
    // The CarePlan says the same, but it is written against the version read: a rival revision
    // from the same reading fails on it rather than landing beside this one.
    EXPECT_EQ(ChangeOf(changes, "e1:careplan"), Change::kUpdated);
    EXPECT_EQ(value_.care_plan->on_ehr.write, OnEhr::Write::kUpdate);
}

TEST_F(PlanRevisionTest, ARivalRevisionFromTheSameReadingConflicts) {
    Assess(a_, {{"R1", "moderate"}});
    const auto reading = ehr_.Written();
    fhir::TransactionValue first = Value(b_, {{"R1", "high"}});
    fhir::TransactionValue second = first;
    ReviseTransaction(b_, first, reading);
    ReviseTransaction(b_, second, reading);
    ehr_.Apply(first);
    // Both carry If-Match on the version they read; the second no longer matches.
    EXPECT_EQ(second.care_plan->on_ehr.version_id, "1");
    EXPECT_EQ(ehr_.Get(ehr_.KeyOf("e1:careplan"))["meta"]["versionId"].String(), "2");
    // Read again, the rival has nothing left to write.
    fhir::TransactionValue again = Value(b_, {{"R1", "high"}});
    ReviseTransaction(b_, again, ehr_.Written());
    EXPECT_FALSE(again.HasWrites());
}

TEST_F(PlanRevisionTest, WhatMicroCareDidNotWriteIsNeverTouched) {
    Assess(a_, {{"R1", "moderate"}});
    // A clinician's DetectedIssue, another encounter's MicroCare finding, and a finding a
    // clinician marked entered in error.
    ehr_.Add("DetectedIssue/theirs",
             R"({"resourceType":"DetectedIssue","id":"theirs","status":"final",
                 "identifier":[{"system":"urn:clinic","value":"e1:issue:R1"}]})");
    ehr_.Add("DetectedIssue/other",
             R"({"resourceType":"DetectedIssue","id":"other","status":"final",
                 "meta":{"versionId":"1"},
                 "identifier":[{"system":")" +
                 std::string(kIdentifierSystem) + R"(","value":"e2:issue:R9"}]})");
    auto changes = Assess(b_, {});
    EXPECT_EQ(ChangeOf(changes, "e1:issue:R1"), Change::kRetired);
    EXPECT_EQ(changes.size(), 3u) << DescribeChanges(changes);
    EXPECT_EQ(value_.retired.size(), 2u);  // R1 and the Task, nothing else
    for (const fhir::RetiredValue& r : value_.retired) EXPECT_NE(r.id, "theirs");
    for (const fhir::RetiredValue& r : value_.retired) EXPECT_NE(r.id, "other");
}

TEST_F(PlanRevisionTest, AFindingMarkedEnteredInErrorIsLeftAlone) {
    Assess(a_, {{"R1", "low"}});
    const std::string key = ehr_.KeyOf("e1:issue:R1");
    ehr_.Add(key, R"({"resourceType":"DetectedIssue","id":")" + key.substr(key.find('/') + 1) +
                      R"(","status":"entered-in-error","severity":"low","meta":{"versionId":"1"},
                      "identifier":[{"system":")" +
                      std::string(kIdentifierSystem) + R"(","value":"e1:issue:R1"}]})");
    auto changes = Assess(b_, {{"R1", "high"}});
    EXPECT_EQ(ChangeOf(changes, "e1:issue:R1"), Change::kUnchanged);
    EXPECT_EQ(ehr_.Get(key)["status"].String(), "entered-in-error");
}

TEST_F(PlanRevisionTest, ChangesAreDescribedForTheAuditWithIdentifiersOnly) {
    Assess(a_, {{"R1", "moderate"}});
    auto changes = Assess(a_, {{"R1", "high"}});
    EXPECT_EQ(DescribeChanges(changes),
              "CarePlan e1:careplan updated (same content, rewritten to guard the revision); "
              "DetectedIssue e1:issue:R1 updated (severity moderate -> high); "
              "Task e1:task updated (reason changed)");
}

// Before a visit: no CarePlan; the Task, focused on the Appointment and due at its start, is
// the lock, and a cancelled appointment retires what its screening wrote.
fhir::TransactionValue PreVisit(const RuleSet& pack, const std::vector<Found>& findings,
                                const std::string& due) {
    fhir::TransactionValue value = Value(pack, findings, "appointment-a1");
    value.care_plan.reset();
    if (value.task) {
        value.task->encounter.clear();
        value.task->focus = "Appointment/a1";
        value.task->due = fhir::LocalInstant{fhir::DateTime::Parse(due)->Earliest(), 0};
    }
    return value;
}

TEST_F(PlanRevisionTest, AMovedAppointmentRevisesTheScreeningsTaskInPlace) {
    value_ = PreVisit(a_, {{"R1", "high"}}, "2026-12-10T09:00:00Z");
    auto first = ReviseTransaction(a_, value_, ehr_.Written());
    EXPECT_EQ(DescribeChanges(first),
              "DetectedIssue appointment-a1:issue:R1 created; Task appointment-a1:task created");
    ehr_.Apply(value_);
    const std::string task = ehr_.KeyOf("appointment-a1:task");
    EXPECT_EQ(ehr_.Get(task)["focus"]["reference"].String(), "Appointment/a1");
    EXPECT_EQ(ehr_.Get(task)["restriction"]["period"]["end"].String(), "2026-12-10T09:00:00Z");

    value_ = PreVisit(a_, {{"R1", "high"}}, "2026-12-12T09:00:00Z");
    auto moved = ReviseTransaction(a_, value_, ehr_.Written());
    EXPECT_EQ(ChangeOf(moved, "appointment-a1:task"), Change::kUpdated);
    ehr_.Apply(value_);
    EXPECT_EQ(ehr_.KeyOf("appointment-a1:task"), task);  // the same Task, revised
    EXPECT_EQ(ehr_.Get(task)["restriction"]["period"]["end"].String(), "2026-12-12T09:00:00Z");

    value_ = PreVisit(a_, {{"R1", "high"}}, "2026-12-12T09:00:00Z");
    ReviseTransaction(a_, value_, ehr_.Written());
    EXPECT_FALSE(value_.HasWrites());
}

TEST_F(PlanRevisionTest, WithoutACarePlanTheTaskGuardsARevision) {
    value_ = PreVisit(a_, {{"R1", "high"}, {"R2", "low"}}, "2026-12-10T09:00:00Z");
    ReviseTransaction(a_, value_, ehr_.Written());
    ehr_.Apply(value_);
    // Only the low finding changes: the Task is rewritten against the version read.
    value_ = PreVisit(a_, {{"R1", "high"}, {"R2", "moderate"}}, "2026-12-10T09:00:00Z");
    value_.task->reason = PreVisit(a_, {{"R1", "high"}}, "2026-12-10T09:00:00Z").task->reason;
    auto changes = ReviseTransaction(a_, value_, ehr_.Written());
    EXPECT_EQ(ChangeOf(changes, "appointment-a1:task"), Change::kUpdated);
    EXPECT_EQ(value_.task->on_ehr.write, OnEhr::Write::kUpdate);
    EXPECT_EQ(value_.task->on_ehr.version_id, "1");
}

TEST_F(PlanRevisionTest, ACancelledAppointmentRetiresItsScreeningAndNothingElse) {
    Assess(a_, {{"R1", "high"}});  // encounter e1's, which the cancellation must not touch
    value_ = PreVisit(a_, {{"R1", "high"}}, "2026-12-10T09:00:00Z");
    ReviseTransaction(a_, value_, ehr_.Written());
    ehr_.Apply(value_);
    value_ = BuildRetirement(a_, "Appointment/a1");
    auto changes = ReviseTransaction(a_, value_, ehr_.Written(), "the appointment is cancelled");
    EXPECT_EQ(DescribeChanges(changes),
              "DetectedIssue appointment-a1:issue:R1 retired; Task appointment-a1:task retired");
    ehr_.Apply(value_);
    const fhir::Node task = ehr_.Get(ehr_.KeyOf("appointment-a1:task"));
    EXPECT_EQ(task["status"].String(), "cancelled");
    EXPECT_NE(task["statusReason"]["text"].String().find("the appointment is cancelled"),
              std::string_view::npos)
        << fhir::Serialize(task);
    EXPECT_EQ(ehr_.Get(ehr_.KeyOf("e1:task"))["status"].String(), "requested");
}

}  // namespace
}  // namespace microcare::rules
