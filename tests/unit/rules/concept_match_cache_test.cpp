#include "rules/concept_match_cache.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "rules/code_index.hpp"

namespace microcare::rules {
namespace {

constexpr const char* kSnomed = "http://snomed.info/sct";

fhir::Concept Acne() { return fhir::Concept{{{kSnomed, "11381005", "Acne vulgaris"}}, {}}; }

TEST(ConceptMatchCache, AChangeToTheIndexIsSeenAtOnce) {
    CodeIndex index;
    index.AddText(0, "acne");
    EXPECT_TRUE(index.Match(Acne()).test(0));
    index.AddExclusion(0, kSnomed, "11381005");
    EXPECT_FALSE(index.Match(Acne()).test(0));
    index.AddCode(1, kSnomed, "11381005");
    EXPECT_TRUE(index.Match(Acne()).test(1));
    index.AddExcludedText(2, "acne vulgaris");
    index.AddText(2, "*vulgaris");
    EXPECT_FALSE(index.Match(Acne()).test(2));
}

TEST(ConceptMatchCache, EachIndexGetsItsOwnAnswers) {
    // A reloaded pack is another index: the same concept on the same thread must not get the
    // first pack's answer.
    CodeIndex first;
    first.AddText(0, "acne");
    CodeIndex second;
    second.AddText(1, "vulgaris");
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(first.Match(Acne()).to_string(), ValueSetMask().set(0).to_string());
        EXPECT_EQ(second.Match(Acne()).to_string(), ValueSetMask().set(1).to_string());
    }
}

TEST(ConceptMatchCache, ConceptsThatDifferOnlyInWhereTheTextIsAreKeptApart) {
    CodeIndex index;
    index.AddCode(0, kSnomed, "1");
    index.AddText(1, "ab");
    // Field boundaries are part of the key: "1" + "ab" as code and display is not "1a" + "b".
    const fhir::Concept coded{{{kSnomed, "1", "ab"}}, {}};
    const fhir::Concept other{{{kSnomed, "1a", "b"}}, {}};
    const fhir::Concept text_only{{}, "ab"};
    const fhir::Concept display_only{{{"", "", "ab"}}, {}};
    EXPECT_EQ(index.Match(coded).to_string(), ValueSetMask().set(0).set(1).to_string());
    EXPECT_TRUE(index.Match(other).none());
    EXPECT_EQ(index.Match(text_only).to_string(), ValueSetMask().set(1).to_string());
    EXPECT_EQ(index.Match(display_only).to_string(), ValueSetMask().set(1).to_string());
    EXPECT_TRUE(index.Match(fhir::Concept{}).none());
}

TEST(ConceptMatchCache, ManyDistinctConceptsAndLongTextsStayCorrect) {
    CodeIndex index;
    index.AddText(0, "acne");
    std::vector<std::string> texts;
    for (int i = 0; i < 10000; ++i) texts.push_back("acne " + std::to_string(i));
    texts.push_back(std::string(2000, 'x') + " acne");
    for (int round = 0; round < 2; ++round) {
        for (const std::string& text : texts) {
            ASSERT_TRUE(index.Match(fhir::Concept{{}, text}).test(0)) << text.substr(0, 20);
        }
    }
}

TEST(ConceptMatchCache, ThreadsMatchTheSameIndexTogether) {
    CodeIndex index;
    index.AddText(0, "acne");
    index.AddCode(1, kSnomed, "11381005");
    index.Build();
    std::vector<std::thread> threads;
    std::vector<int> wrong(4, 0);
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 2000; ++i) {
                const fhir::Concept c{{{kSnomed, "11381005", "Acne vulgaris"}},
                                      i % 2 ? "acne" : "papules"};
                if (index.Match(c) != ValueSetMask().set(0).set(1)) ++wrong[t];
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(wrong, std::vector<int>(4, 0));
}

}  // namespace
}  // namespace microcare::rules
