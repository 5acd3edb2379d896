// Assessing a treatment before it is given (a proposed Appointment or draft ServiceRequest) and
// the CDS cards made from that assessment: the same pure pipeline as an encounter's.
#include "rules/cds_cards.hpp"

#include <gtest/gtest.h>

#include "rules/record_assessment.hpp"
#include "source_files.hpp"

namespace microcare::rules {
namespace {

const RuleSet& Pack() { return testing::DefaultPack(); }

constexpr const char* kMicroneedling =
    R"json({"coding":[{"system":"https://microcare.example/CodeSystem/procedure","code":"microneedling"}]})json";

// A course of isotretinoin that ended on 2026-06-30: past use, R3 within its 6-month window.
constexpr const char* kPastCourse =
    R"({"resourceType":"MedicationStatement","id":"ms1","status":"completed",
        "subject":{"reference":"Patient/p1"},
        "medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"6064","display":"isotretinoin"}]},
        "effectivePeriod":{"start":"2026-01-05","end":"2026-06-30"}})";
// A current prescription: A8, absolute.
constexpr const char* kCurrent =
    R"({"resourceType":"MedicationRequest","id":"mr1","status":"active","intent":"order",
        "subject":{"reference":"Patient/p1"},"authoredOn":"2026-10-01",
        "medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"197843","display":"Isotretinoin 10 MG Oral Capsule"}]}})";

// A patient with one medication and one proposed treatment.
std::string Record(const std::string& proposed, const std::string& medication = kPastCourse) {
    return R"({"resourceType":"Bundle","type":"collection","entry":[
      {"resource":{"resourceType":"Patient","id":"p1","birthDate":"1990-01-01"}},
      {"resource":)" +
           medication + R"(},{"resource":)" + proposed + "}]}";
}

std::string Appointment(const std::string& start, const std::string& service = kMicroneedling) {
    return R"({"resourceType":"Appointment","id":"a1","status":"proposed","serviceType":[)" +
           service + R"(],"start":")" + start +
           R"(","participant":[{"actor":{"reference":"Patient/p1"}}]})";
}

std::unique_ptr<const RecordAssessment> Assess(const std::string& record,
                                               const std::string& reference,
                                               fhir::Instant now = {}) {
    EncounterChoice choice;
    choice.reference = reference;
    choice.proposed = true;
    choice.patient = "Patient/p1";
    fhir::IssueList issues;
    auto run = RecordAssessment::Run(Pack(), record, choice, now, issues);
    EXPECT_TRUE(run) << (issues.empty() ? "" : issues.issues()[0].message);
    return run;
}

bool Found(const Assessment& a, std::string_view rule) {
    for (const Finding& f : a.findings) {
        if (Pack().rules[f.rule].id == rule) return true;
    }
    return false;
}

TEST(ProposedTreatment, WindowsAreMeasuredFromTheAppointmentsStart) {
    auto soon = Assess(Record(Appointment("2026-11-20T10:00:00+01:00")), "Appointment/a1");
    ASSERT_TRUE(soon);
    EXPECT_TRUE(soon->assessment().applies);
    EXPECT_EQ(soon->assessment().origin_source, "Appointment.start");
    EXPECT_TRUE(Found(soon->assessment(), "R3"));
    // Booked for after the wait: the same record gives no R3.
    auto later = Assess(Record(Appointment("2027-02-01T10:00:00+01:00")), "Appointment/a1");
    ASSERT_TRUE(later);
    EXPECT_FALSE(Found(later->assessment(), "R3"));
    // Nothing is written for advice.
    EXPECT_TRUE(soon->transaction().issues.empty());
}

TEST(ProposedTreatment, AServiceRequestWithoutADateIsMeasuredFromNow) {
    const std::string order =
        std::string(
            R"({"resourceType":"ServiceRequest","id":"s1","status":"draft","intent":"order","code":)") +
        kMicroneedling + R"(,"subject":{"reference":"Patient/p1"}})";
    auto run = Assess(Record(order), "ServiceRequest/s1",
                      fhir::DateTime::Parse("2026-12-01T09:00:00Z")->Earliest());
    ASSERT_TRUE(run);
    EXPECT_TRUE(run->assessment().applies);
    EXPECT_TRUE(Found(run->assessment(), "R3"));
    auto late = Assess(Record(order), "ServiceRequest/s1",
                       fhir::DateTime::Parse("2027-03-01T09:00:00Z")->Earliest());
    ASSERT_TRUE(late);
    EXPECT_FALSE(Found(late->assessment(), "R3"));
    EXPECT_NE(run->assessment().origin_source.find("evaluation time"), std::string::npos);
}

TEST(ProposedTreatment, SomethingElseDoesNotApply) {
    auto run = Assess(
        Record(Appointment(
            "2026-11-20T10:00:00+01:00",
            R"({"coding":[{"system":"http://snomed.info/sct","code":"1"}],"text":"Chemical peel"})")),
        "Appointment/a1");
    ASSERT_TRUE(run);
    EXPECT_FALSE(run->assessment().applies);
    EXPECT_TRUE(BuildCards(Pack(), run->assessment()).empty());
}

TEST(ProposedTreatment, ARecordWithoutItIsAProblemWithAPath) {
    EncounterChoice choice;
    choice.reference = "Appointment/missing";
    choice.proposed = true;
    choice.source = "context.appointments";
    fhir::IssueList issues;
    EXPECT_FALSE(
        RecordAssessment::Run(Pack(), Record(Appointment("2026-11-20")), choice, {}, issues));
    ASSERT_FALSE(issues.empty());
    EXPECT_EQ(issues.issues()[0].path, "context.appointments");
}

TEST(CdsCards, CriticalPerAbsoluteFindingThenOneAftercareCard) {
    const std::string order =
        std::string(
            R"({"resourceType":"ServiceRequest","id":"s1","status":"draft","intent":"order","code":)") +
        kMicroneedling +
        R"(,"subject":{"reference":"Patient/p1"},"occurrenceDateTime":"2026-11-20T10:00:00+01:00"})";
    auto run = Assess(Record(order, kCurrent), "ServiceRequest/s1");
    ASSERT_TRUE(run);
    CardOptions sign;
    sign.suggest_delete_order = true;
    const auto cards = BuildCards(Pack(), run->assessment(), sign);
    ASSERT_GE(cards.size(), 2u);
    EXPECT_EQ(cards.front().indicator, Card::Indicator::kCritical);
    EXPECT_EQ(cards.front().key, "A8");
    EXPECT_EQ(cards.front().evidence, std::vector<std::string>{"MedicationRequest/mr1"});
    EXPECT_EQ(cards.front().delete_order, "ServiceRequest/s1");
    EXPECT_NE(cards.front().detail.find("MedicationRequest/mr1"), std::string::npos);
    EXPECT_NE(cards.front().detail.find("ServiceRequest.occurrenceDateTime 2026-11-20"),
              std::string::npos);
    EXPECT_EQ(cards.back().indicator, Card::Indicator::kInfo);
    EXPECT_EQ(cards.back().key, "aftercare");
    EXPECT_NE(cards.back().detail.find("On hold"), std::string::npos);  // absolute: next on hold
    for (const Card& card : cards) EXPECT_LT(card.summary.size(), 140u);
}

TEST(CdsCards, ShortenCutsOnACharacterBoundary) {
    const std::string text = std::string(137, 'a') + "\xC3\xA9\xC3\xA9";  // "éé" at the end
    const std::string cut = Shorten(text, 140);
    EXPECT_LT(cut.size(), 140u);
    EXPECT_EQ(cut.substr(cut.size() - 3), "\xE2\x80\xA6");
    EXPECT_EQ(Shorten("short", 140), "short");
    // No half of the two-byte é is left before the ellipsis.
    const std::string body = cut.substr(0, cut.size() - 3);
    EXPECT_NE(static_cast<unsigned char>(body.back()), 0xC3);
}

}  // namespace
}  // namespace microcare::rules
