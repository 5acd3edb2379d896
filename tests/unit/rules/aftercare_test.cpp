// Aftercare dates against hand-computed ones: the first session, the middle of a series, a
// complete series (maintenance), a melasma series, and the hold after an absolute finding.
#include <gtest/gtest.h>

#include "rules/record_assessment.hpp"
#include "tests/unit/rules/source_files.hpp"

namespace microcare::rules {
namespace {

const RuleSet& Pack() { return testing::DefaultPack(); }

struct Planned {
    std::string kind;
    std::string status;
    std::string start;
    std::string end;
    std::string description;
};

struct Outcome {
    int session = 0;
    int length = 0;
    std::string indication;
    std::vector<Planned> activities;  // the check and the next visit (instructions left out)
};

Outcome Assess(const std::string& record_text, const std::string& encounter) {
    fhir::IssueList issues;
    const fhir::Instant now = fhir::DateTime::Parse("2026-11-24T12:00:00Z")->Earliest();
    auto run = RecordAssessment::Run(Pack(), record_text, {encounter, "test"}, now, issues);
    if (!run) {
        ADD_FAILURE() << (issues.empty() ? "no assessment" : fhir::FormatIssue(*issues.begin()));
        return {};
    }
    const Assessment& a = run->assessment();
    EXPECT_TRUE(a.applies) << a.explanation;
    Outcome out{a.session_number, a.series_length, a.indication, {}};
    for (const PlannedActivity& p : a.activities) {
        if (p.kind == PlannedActivity::Kind::kInstruction) continue;
        const char* kind = p.kind == PlannedActivity::Kind::kCheck         ? "check"
                           : p.kind == PlannedActivity::Kind::kNextSession ? "session"
                                                                           : "maintenance";
        out.activities.push_back({kind, p.status, fhir::FormatInstant(p.start, a.offset_minutes),
                                  fhir::FormatInstant(p.end, a.offset_minutes), p.description});
    }
    return out;
}

Outcome AssessExample(const std::string& file, const std::string& encounter) {
    return Assess(*testing::ReadSourceFile("config/examples/" + file), encounter);
}

TEST(Aftercare, FirstSession) {
    Outcome o = AssessExample("clean-first-session.json", "Encounter/enc-mn-20261120");
    EXPECT_EQ(o.session, 1);
    EXPECT_EQ(o.length, 3);
    ASSERT_EQ(o.activities.size(), 2u);
    // Encounter 2026-11-20T10:00+01:00: the check 24-72 h later, the next session 4-6 weeks later.
    EXPECT_EQ(o.activities[0].kind, "check");
    EXPECT_EQ(o.activities[0].start, "2026-11-21T10:00:00+01:00");
    EXPECT_EQ(o.activities[0].end, "2026-11-23T10:00:00+01:00");
    EXPECT_NE(o.activities[0].description.find("Due 2026-11-22T10:00:00+01:00"), std::string::npos);
    EXPECT_EQ(o.activities[1].kind, "session");
    EXPECT_EQ(o.activities[1].status, "scheduled");
    EXPECT_EQ(o.activities[1].start, "2026-12-18T10:00:00+01:00");
    EXPECT_EQ(o.activities[1].end, "2027-01-01T10:00:00+01:00");
    EXPECT_EQ(o.activities[1].description.rfind("Session 2 of 3", 0), 0u);
}

TEST(Aftercare, MidSeries) {
    // Earlier session 2026-10-16; this one 2026-11-20T18:00+01:00.
    Outcome o = AssessExample("several-encounters.json", "Encounter/enc-mn-20261120");
    EXPECT_EQ(o.session, 2);
    ASSERT_EQ(o.activities.size(), 2u);
    EXPECT_EQ(o.activities[1].kind, "session");
    EXPECT_EQ(o.activities[1].start, "2026-12-18T18:00:00+01:00");
    EXPECT_EQ(o.activities[1].end, "2027-01-01T18:00:00+01:00");
    EXPECT_EQ(o.activities[1].description.rfind("Session 3 of 3", 0), 0u);
}

TEST(Aftercare, SeriesCompleteMeansMaintenance) {
    // Sessions 2026-09-18 and 2026-11-20 (one of them an Encounter and its Procedure on the
    // same day), plus this one; the 2025-08-14 session is outside the 12-month count.
    Outcome o = AssessExample("mid-series.json", "Encounter/enc-mn-20261120");
    EXPECT_EQ(o.session, 3);
    ASSERT_EQ(o.activities.size(), 2u);
    EXPECT_EQ(o.activities[1].kind, "maintenance");
    EXPECT_EQ(o.activities[1].start, "2027-05-20T14:00:00+01:00");
    EXPECT_EQ(o.activities[1].end, "2027-11-20T14:00:00+01:00");
}

TEST(Aftercare, MelasmaSeriesIsFourSessionsTwoToFourWeeksApart) {
    const std::string record = R"({"resourceType":"Bundle","type":"collection","entry":[
      {"resource":{"resourceType":"Patient","id":"p"}},
      {"resource":{"resourceType":"Encounter","id":"e","status":"finished","subject":{"reference":"Patient/p"},
        "type":[{"text":"Microneedling"}],"reasonCode":[{"text":"Melasma, cheeks"}],
        "period":{"start":"2026-11-20T10:00:00+01:00"}}}]})";
    Outcome o = Assess(record, "Encounter/e");
    EXPECT_EQ(o.indication, "melasma");
    EXPECT_EQ(o.length, 4);
    ASSERT_EQ(o.activities.size(), 2u);
    EXPECT_EQ(o.activities[1].start, "2026-12-04T10:00:00+01:00");
    EXPECT_EQ(o.activities[1].end, "2026-12-18T10:00:00+01:00");
    EXPECT_EQ(o.activities[1].description.rfind("Session 2 of 4 (melasma)", 0), 0u);
}

TEST(Aftercare, AnAbsoluteFindingHoldsTheNextSessionButNotTheCheck) {
    Outcome o = AssessExample("absolute-isotretinoin.json", "Encounter/enc-mn-20261120");
    ASSERT_EQ(o.activities.size(), 2u);
    EXPECT_EQ(o.activities[0].status, "scheduled");
    EXPECT_EQ(o.activities[1].status, "on-hold");
}

TEST(Aftercare, CalendarMonthsAtTheEndOfAMonth) {
    const std::string record = R"({"resourceType":"Bundle","type":"collection","entry":[
      {"resource":{"resourceType":"Patient","id":"p"}},
      {"resource":{"resourceType":"Encounter","id":"e1","status":"finished","subject":{"reference":"Patient/p"},
        "type":[{"text":"Microneedling"}],"period":{"start":"2026-07-31T09:00:00Z"}}},
      {"resource":{"resourceType":"Encounter","id":"e2","status":"finished","subject":{"reference":"Patient/p"},
        "type":[{"text":"Microneedling"}],"period":{"start":"2026-08-31T09:00:00Z"}}},
      {"resource":{"resourceType":"Encounter","id":"e3","status":"finished","subject":{"reference":"Patient/p"},
        "type":[{"text":"Microneedling"}],"period":{"start":"2026-08-31T09:00:00Z"}}}]})";
    // e2 and e3 fall on the same day: one session. Three sessions need a third day.
    Outcome o = Assess(record, "Encounter/e2");
    EXPECT_EQ(o.session, 2);
    const std::string third = R"({"resourceType":"Bundle","type":"collection","entry":[
      {"resource":{"resourceType":"Patient","id":"p"}},
      {"resource":{"resourceType":"Encounter","id":"a","status":"finished","subject":{"reference":"Patient/p"},"type":[{"text":"Microneedling"}],"period":{"start":"2026-06-30T09:00:00Z"}}},
      {"resource":{"resourceType":"Encounter","id":"b","status":"finished","subject":{"reference":"Patient/p"},"type":[{"text":"Microneedling"}],"period":{"start":"2026-07-31T09:00:00Z"}}},
      {"resource":{"resourceType":"Encounter","id":"c","status":"finished","subject":{"reference":"Patient/p"},"type":[{"text":"Microneedling"}],"period":{"start":"2026-08-31T09:00:00Z"}}}]})";
    Outcome complete = Assess(third, "Encounter/c");
    EXPECT_EQ(complete.session, 3);
    // 31 August + 6 months is the last day of February.
    EXPECT_EQ(complete.activities[1].start, "2027-02-28T09:00:00Z");
    EXPECT_EQ(complete.activities[1].end, "2027-08-31T09:00:00Z");
}

}  // namespace
}  // namespace microcare::rules
