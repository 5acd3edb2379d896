#include "rules/code_index.hpp"

#include <gtest/gtest.h>

namespace microcare::rules {
namespace {

constexpr const char* kIcd = "http://hl7.org/fhir/sid/icd-10-cm";
constexpr const char* kSnomed = "http://snomed.info/sct";
constexpr const char* kAtc = "http://www.whocc.no/atc";

fhir::Concept Coded(const char* system, const char* code, const char* display = "") {
    return fhir::Concept{{{system, code, display}}, {}};
}
fhir::Concept Text(const char* text) { return fhir::Concept{{}, text}; }

TEST(CodeIndex, ExactCodesOnlyWithinTheirSystem) {
    CodeIndex index;
    index.AddCode(0, kSnomed, "33659008");
    EXPECT_TRUE(index.Match(Coded(kSnomed, "33659008")).test(0));
    EXPECT_FALSE(index.Match(Coded(kIcd, "33659008")).test(0));
    EXPECT_FALSE(index.Match(Coded(kSnomed, "3365900")).test(0));
}

TEST(CodeIndex, IcdPrefixesRangesAndDots) {
    CodeIndex index;
    index.AddPrefix(0, kIcd, "B35.");
    index.AddRange(1, kIcd, "O00", "O9A");
    index.AddCode(2, kIcd, "L70.0");
    EXPECT_TRUE(index.Match(Coded(kIcd, "B35")).test(0));
    EXPECT_TRUE(index.Match(Coded(kIcd, "B35.0")).test(0));
    EXPECT_TRUE(index.Match(Coded(kIcd, "B350")).test(0));
    EXPECT_FALSE(index.Match(Coded(kIcd, "B36.0")).test(0));
    EXPECT_TRUE(index.Match(Coded(kIcd, "O9A.1")).test(1));
    EXPECT_TRUE(index.Match(Coded(kIcd, "O26.891")).test(1));
    EXPECT_FALSE(index.Match(Coded(kIcd, "P00")).test(1));
    EXPECT_TRUE(index.Match(Coded(kIcd, "L700")).test(2));
}

TEST(CodeIndex, TextPatternsRespectWordBoundaries) {
    CodeIndex index;
    index.AddText(0, "CIT");
    index.AddText(1, "microneedl*");
    index.AddText(2, "*botulinumtoxin*");
    index.AddText(3, "RF microneedl*");
    EXPECT_TRUE(index.Match(Text("CIT session")).test(0));
    EXPECT_TRUE(index.Match(Text("collagen (cit)")).test(0));
    EXPECT_FALSE(index.Match(Text("citrus peel")).test(0));
    EXPECT_FALSE(index.Match(Text("elicit")).test(0));
    EXPECT_TRUE(index.Match(Text("Microneedling, face")).test(1));
    EXPECT_FALSE(index.Match(Text("nanomicroneedling")).test(1));
    EXPECT_TRUE(index.Match(Text("abobotulinumtoxinA 50 units")).test(2));
    EXPECT_TRUE(index.Match(Text("rf MICRONEEDLING")).test(3));
    // Displays count as text.
    EXPECT_TRUE(index.Match(Coded("urn:local", "42", "Microneedling")).test(1));
}

TEST(CodeIndex, ExclusionsWin) {
    CodeIndex index;
    index.AddCode(0, kAtc, "D10BA01");
    index.AddText(0, "isotretinoin");
    index.AddExclusion(0, kAtc, "D10AD04");
    index.AddText(1, "acne");
    index.AddExcludedText(1, "acne scar*");
    EXPECT_TRUE(index.Match(Text("Isotretinoin 20 mg")).test(0));
    fhir::Concept topical{{{kAtc, "D10AD04", "isotretinoin"}}, "isotretinoin gel"};
    EXPECT_FALSE(index.Match(topical).test(0));
    EXPECT_TRUE(index.Match(Text("acne vulgaris")).test(1));
    EXPECT_FALSE(index.Match(Text("Acne scarring, atrophic")).test(1));
}

}  // namespace
}  // namespace microcare::rules
