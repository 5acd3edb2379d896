// What `rules replay` prints per encounter: two assessments of one encounter compared finding by
// finding (rule and evidence resource) and activity by activity.
#include "rules/outcome_diff.hpp"

#include <gtest/gtest.h>

#include <deque>

#include "rules/record_assessment.hpp"
#include "tests/unit/rules/source_files.hpp"

namespace microcare::rules {
namespace {

using Kind = OutcomeChange::Kind;

const fhir::Instant kOrigin = fhir::DateTime::Parse("2026-11-20T10:00:00Z")->Earliest();

// A pack with only rule ids: all the diff reads of a pack.
RuleSet PackOf(std::initializer_list<const char*> ids) {
    RuleSet pack;
    for (const char* id : ids) {
        Rule rule;
        rule.id = id;
        pack.rules.push_back(std::move(rule));
    }
    return pack;
}

class OutcomeDiffTest : public ::testing::Test {
protected:
    const fhir::ClinicalResource* Resource(std::string reference) {
        fhir::ClinicalResource& r = resources_.emplace_back();
        r.reference = strings_.emplace_back(std::move(reference));
        return &r;
    }

    static Finding FindingOf(std::size_t rule, Severity severity,
                             std::vector<const fhir::ClinicalResource*> evidence) {
        Finding f;
        f.rule = rule;
        f.severity = severity;
        for (const fhir::ClinicalResource* r : evidence) {
            Evidence e;
            e.resource = r;
            f.evidence.push_back(std::move(e));
        }
        return f;
    }

    static PlannedActivity Activity(PlannedActivity::Kind kind, int from_days, int to_days,
                                    std::string instruction = {}) {
        PlannedActivity a;
        a.kind = kind;
        a.status = "scheduled";
        a.start = kOrigin + std::chrono::days(from_days);
        a.end = kOrigin + std::chrono::days(to_days);
        a.description = "text";
        a.instruction = std::move(instruction);
        return a;
    }

    Assessment Base() {
        Assessment a;
        a.applies = true;
        a.findings = {FindingOf(0, Severity::kAbsolute, {isotretinoin_}),
                      FindingOf(1, Severity::kRelative, {anticoagulant_})};
        a.activities = {Activity(PlannedActivity::Kind::kCheck, 1, 3),
                        Activity(PlannedActivity::Kind::kNextSession, 28, 42),
                        Activity(PlannedActivity::Kind::kInstruction, 0, 2, "no-makeup")};
        return a;
    }

    std::deque<std::string> strings_;
    std::deque<fhir::ClinicalResource> resources_;
    const fhir::ClinicalResource* isotretinoin_ = Resource("MedicationStatement/ms-1");
    const fhir::ClinicalResource* anticoagulant_ = Resource("MedicationRequest/mr-1");
    const fhir::ClinicalResource* herpes_ = Resource("Condition/c-1");
    const RuleSet pack_ = PackOf({"A8", "R4", "R1"});
};

TEST_F(OutcomeDiffTest, TheSameOutcomeHasNoChange) {
    EXPECT_TRUE(DiffOutcomes(pack_, Base(), pack_, Base()).empty());
}

TEST_F(OutcomeDiffTest, RulesAreMatchedByIdNotByTheirPlaceInThePack) {
    // The new pack lists its rules in another order: the same findings are no change.
    const RuleSet reordered = PackOf({"R4", "A8", "R1"});
    Assessment after = Base();
    after.findings = {FindingOf(1, Severity::kAbsolute, {isotretinoin_}),
                      FindingOf(0, Severity::kRelative, {anticoagulant_})};
    EXPECT_TRUE(DiffOutcomes(pack_, Base(), reordered, after).empty());
}

TEST_F(OutcomeDiffTest, AddedRemovedAndChangedFindingsAreNamedByRuleAndEvidence) {
    Assessment after = Base();
    after.findings = {FindingOf(0, Severity::kRelative, {isotretinoin_}),
                      FindingOf(2, Severity::kRelative, {herpes_})};
    const auto changes = DiffOutcomes(pack_, Base(), pack_, after);
    ASSERT_EQ(changes.size(), 3u);
    EXPECT_EQ(changes[0].kind, Kind::kSeverityChanged);
    EXPECT_EQ(changes[0].subject, "A8@MedicationStatement/ms-1");
    EXPECT_EQ(changes[0].before, "absolute");
    EXPECT_EQ(changes[0].after, "relative");
    EXPECT_EQ(changes[1].kind, Kind::kFindingAdded);
    EXPECT_EQ(changes[1].subject, "R1@Condition/c-1");
    EXPECT_EQ(changes[1].after, "relative");
    EXPECT_EQ(changes[2].kind, Kind::kFindingRemoved);
    EXPECT_EQ(changes[2].subject, "R4@MedicationRequest/mr-1");
    EXPECT_EQ(Describe(changes[0]), "~ finding A8@MedicationStatement/ms-1: absolute -> relative");
    EXPECT_EQ(Describe(changes[1]), "+ finding R1@Condition/c-1: relative");
    EXPECT_EQ(Describe(changes[2]), "- finding R4@MedicationRequest/mr-1: relative");
}

TEST_F(OutcomeDiffTest, ARuleThatGainsEvidenceShowsOnlyTheNewResource) {
    Assessment after = Base();
    after.findings[1] = FindingOf(1, Severity::kRelative, {anticoagulant_, herpes_});
    const auto changes = DiffOutcomes(pack_, Base(), pack_, after);
    ASSERT_EQ(changes.size(), 1u);
    EXPECT_EQ(Describe(changes[0]), "+ finding R4@Condition/c-1: relative");
}

TEST_F(OutcomeDiffTest, ScheduleChangesNameTheActivityAndItsWindows) {
    Assessment after = Base();
    after.activities[1] = Activity(PlannedActivity::Kind::kNextSession, 35, 49);
    after.activities[2] = Activity(PlannedActivity::Kind::kInstruction, 0, 2, "sun");
    after.activities[0].description = "other text";
    const auto changes = DiffOutcomes(pack_, Base(), pack_, after);
    ASSERT_EQ(changes.size(), 4u);
    EXPECT_EQ(Describe(changes[0]),
              "~ activity check: scheduled 2026-11-21T10:00:00Z to 2026-11-23T10:00:00Z -> "
              "scheduled 2026-11-21T10:00:00Z to 2026-11-23T10:00:00Z (text changed)");
    EXPECT_EQ(changes[1].kind, Kind::kActivityRemoved);
    EXPECT_EQ(changes[1].subject, "instruction:no-makeup");
    EXPECT_EQ(changes[2].kind, Kind::kActivityAdded);
    EXPECT_EQ(changes[2].subject, "instruction:sun");
    EXPECT_EQ(Describe(changes[3]),
              "~ activity next-session: scheduled 2026-12-18T10:00:00Z to 2027-01-01T10:00:00Z "
              "-> scheduled 2026-12-25T10:00:00Z to 2027-01-08T10:00:00Z");
}

TEST_F(OutcomeDiffTest, AnEncounterNoLongerAssessedLosesItsFindingsAndPlan) {
    Assessment after;
    after.applies = false;
    after.explanation = "not a microneedling encounter";
    const auto changes = DiffOutcomes(pack_, Base(), pack_, after);
    ASSERT_EQ(changes.size(), 6u);
    EXPECT_EQ(Describe(changes[0]),
              "~ encounter: assessed -> not assessed: not a microneedling encounter");
    for (std::size_t i = 1; i < changes.size(); ++i) {
        EXPECT_TRUE(changes[i].kind == Kind::kFindingRemoved ||
                    changes[i].kind == Kind::kActivityRemoved)
            << Describe(changes[i]);
    }
}

// The default pack with one edit to its text.
RuleSet EditedDefaultPack(const std::string& from, const std::string& to) {
    const std::string folder = "config/rules/";
    std::string text = *testing::ReadSourceFile(folder + "microneedling.json");
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    fhir::IssueList issues;
    auto pack = LoadRuleSet(
        text,
        [&](std::string_view relative) {
            return testing::ReadSourceFile(folder + std::string(relative));
        },
        issues);
    EXPECT_TRUE(pack) << issues.size();
    return std::move(*pack);
}

// The real pipeline: one read of a record, evaluated under the default pack and under a copy
// whose anticoagulant rule (R4) is made absolute.
TEST(OutcomeDiffOnARecord, AStricterRuleShowsAsASeverityChangeAndHoldsTheNextSession) {
    const RuleSet& pack = testing::DefaultPack();
    const RuleSet stricter = EditedDefaultPack(
        "\"id\": \"R4\",\n      \"title\": \"Anticoagulant or antiplatelet therapy\",\n"
        "      \"severity\": \"relative\"",
        "\"id\": \"R4\",\n      \"title\": \"Anticoagulant or antiplatelet therapy\",\n"
        "      \"severity\": \"absolute\"");
    auto record = testing::ReadSourceFile("config/examples/relative-anticoagulant.json");
    ASSERT_TRUE(record);
    fhir::IssueList issues;
    const fhir::Instant now = fhir::DateTime::Parse("2026-11-24T12:00:00Z")->Earliest();
    auto run = RecordAssessment::Run(pack, *record, {}, now, issues);
    ASSERT_TRUE(run) << issues.size();

    EXPECT_TRUE(DiffOutcomes(pack, run->assessment(), pack, run->EvaluateUnder(pack, now)).empty());
    const auto changes =
        DiffOutcomes(pack, run->assessment(), stricter, run->EvaluateUnder(stricter, now));
    ASSERT_FALSE(changes.empty());
    EXPECT_EQ(changes[0].kind, Kind::kSeverityChanged);
    EXPECT_TRUE(changes[0].subject.starts_with("R4@")) << changes[0].subject;
    EXPECT_EQ(changes[0].before, "relative");
    EXPECT_EQ(changes[0].after, "absolute");
    // An absolute finding puts the next session on hold: a schedule change.
    bool held = false;
    for (const OutcomeChange& c : changes) {
        EXPECT_NE(c.kind, Kind::kFindingAdded) << Describe(c);
        EXPECT_NE(c.kind, Kind::kFindingRemoved) << Describe(c);
        held |= c.kind == Kind::kActivityChanged && c.subject == "next-session" &&
                c.after.starts_with("on-hold");
    }
    EXPECT_TRUE(held);
}

}  // namespace
}  // namespace microcare::rules
