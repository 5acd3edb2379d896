#include <gtest/gtest.h>

#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include "rules/code_index.hpp"

namespace microcare::rules {
namespace {

// The text patterns as config/README.md defines them, written the slow and obvious way: every
// pattern tried at every position. The index must agree with it on every text.
class ReferenceMatcher {
public:
    void Add(std::size_t value_set, std::string_view pattern, bool excluded) {
        Pattern p;
        p.value_set = value_set;
        p.excluded = excluded;
        p.anchored = !pattern.starts_with('*');
        if (!p.anchored) pattern.remove_prefix(1);
        p.open_end = pattern.ends_with('*');
        if (p.open_end) pattern.remove_suffix(1);
        if (pattern.size() < 2) return;
        p.body = pattern;
        patterns_.push_back(std::move(p));
    }

    ValueSetMask Match(std::string_view text) const {
        ValueSetMask matched;
        ValueSetMask excluded;
        for (const Pattern& p : patterns_) {
            for (std::size_t at = 0; at < text.size(); ++at) {
                if (MatchesAt(p, text, at)) (p.excluded ? excluded : matched).set(p.value_set);
            }
        }
        return matched & ~excluded;
    }

private:
    struct Pattern {
        std::string body;
        std::size_t value_set = 0;
        bool anchored = true;
        bool open_end = false;
        bool excluded = false;
    };

    static bool IsWordChar(unsigned char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
               c >= 0x80;
    }
    static char Fold(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

    static bool MatchesAt(const Pattern& p, std::string_view text, std::size_t at) {
        // A pattern starts with a letter or digit (the loader refuses others): one that does not
        // can never start a match.
        if (!IsWordChar(static_cast<unsigned char>(p.body[0]))) return false;
        const std::size_t end = at + p.body.size();
        if (end > text.size()) return false;
        for (std::size_t k = 0; k < p.body.size(); ++k) {
            if (Fold(text[at + k]) != Fold(p.body[k])) return false;
        }
        if (p.anchored && at > 0 && IsWordChar(static_cast<unsigned char>(text[at - 1]))) {
            return false;
        }
        return p.open_end || end == text.size() ||
               !IsWordChar(static_cast<unsigned char>(text[end]));
    }

    std::vector<Pattern> patterns_;
};

// Both matchers with the same patterns.
struct Both {
    CodeIndex index;
    ReferenceMatcher reference;

    void Add(std::size_t value_set, std::string_view pattern, bool excluded = false) {
        if (excluded) {
            index.AddExcludedText(value_set, pattern);
        } else {
            index.AddText(value_set, pattern);
        }
        reference.Add(value_set, pattern, excluded);
    }

    ValueSetMask Of(std::string_view text) const { return index.Match(fhir::Concept{{}, text}); }

    void AddAll(std::initializer_list<std::pair<std::size_t, std::string_view>> patterns) {
        for (const auto& [value_set, pattern] : patterns) Add(value_set, pattern);
    }

    void ExpectSame(std::initializer_list<std::string_view> texts) const {
        for (std::string_view text : texts) ExpectSame(text);
    }

    void ExpectSame(std::string_view text) const {
        EXPECT_EQ(index.Match(fhir::Concept{{}, text}), reference.Match(text))
            << "text: \"" << text << "\"";
        // A display is text too.
        EXPECT_EQ(index.Match(fhir::Concept{{{"urn:x", "1", text}}, {}}), reference.Match(text))
            << "display: \"" << text << "\"";
    }
};

TEST(TextPatterns, OverlappingPatternsAllMatch) {
    Both both;
    both.AddAll({{0, "herpes"},
                 {1, "herpes zoster"},
                 {2, "zoster"},
                 {3, "*ster*"},
                 {4, "her*"},
                 {5, "*pes"}});
    both.ExpectSame({"herpes zoster", "Herpes Zoster ophthalmicus", "herpeszoster",
                     "herpes zosteroid", "zoster", "oster", "the herpes", "herpe"});
    EXPECT_TRUE(both.Of("herpes zoster").test(0));
    EXPECT_TRUE(both.Of("herpes zoster").test(1));
    EXPECT_TRUE(both.Of("herpes zoster").test(2));
    EXPECT_FALSE(both.Of("herpeszoster").test(2));
}

TEST(TextPatterns, PatternsThatAreSuffixesOfOthers) {
    // An automaton finds a short pattern inside a long one through its suffix links: "acne"
    // ends inside "cystic acne", and "ne" inside both.
    Both both;
    both.AddAll({{0, "cystic acne"}, {1, "acne"}, {2, "*ne"}, {3, "*cne*"}});
    both.ExpectSame({"cystic acne", "acne", "cystic acnes", "xacne", "ne", "acne ne"});
    EXPECT_EQ(both.Of("cystic acne").count(), 4u);
}

TEST(TextPatterns, CaseFoldingIsAsciiOnly) {
    Both both;
    both.AddAll({{0, "MicroNeedl*"}, {1, "sjögren*"}, {2, "juvéderm"}});
    both.ExpectSame({"MICRONEEDLING", "microneedling", "Sjögren syndrome", "SJöGREN", "SJÖGREN",
                     "Juvéderm", "JUVÉDERM", "juvederm"});
    EXPECT_TRUE(both.Of("SJöGREN").test(1));
    EXPECT_FALSE(both.Of("SJÖGREN").test(1));
    EXPECT_FALSE(both.Of("JUVÉDERM").test(2));
}

TEST(TextPatterns, NonAsciiBytesAreWordCharacters) {
    Both both;
    both.AddAll({{0, "derm"}, {1, "*derm"}, {2, "ö*"}});
    both.ExpectSame({"juvéderm", "é derm", "derm€", "derm é", "öl", "xöl", "ö"});
    EXPECT_FALSE(both.Of("juvéderm").test(0));
    EXPECT_TRUE(both.Of("juvéderm").test(1));
}

TEST(TextPatterns, WordBoundaries) {
    Both both;
    both.AddAll({{0, "cit"}, {1, "co2 laser*"}, {2, "*toxin*"}});
    both.ExpectSame({"cit", "(CIT)", "cit-", "elicit", "citrus", "cit2", "co2 laser", "co2 lasers",
                     "co2  laser", "xco2 laser", "botulinumtoxinA", "toxin", "cit_x", "cit.x",
                     "x cit"});
}

TEST(TextPatterns, EmptyAndShortTexts) {
    Both both;
    both.AddAll({{0, "ab"}, {1, "*ab*"}});
    both.ExpectSame({"", "a", "b", "ab", "AB", " ab", "ab "});
    EXPECT_TRUE(both.Of("").none());
}

TEST(TextPatterns, ExcludedTextCancelsOnlyItsValueSet) {
    Both both;
    both.Add(0, "acne");
    both.Add(0, "acne scar*", true);
    both.Add(1, "*scar*");
    both.ExpectSame({"acne", "acne scarring", "Acne scars and acne", "scar"});
    EXPECT_FALSE(both.Of("acne scarring").test(0));
    EXPECT_TRUE(both.Of("acne scarring").test(1));
}

TEST(TextPatterns, PatternsTheLoaderRefusesNeverMatch) {
    // CodeIndex takes them; they have never matched anything.
    Both both;
    both.AddAll({{0, "a"}, {1, "*"}, {2, "-x"}, {3, " ab"}, {4, "**ab"}});
    both.ExpectSame({"a", "-x", "a -x", " ab", "x ab", "*ab", "ab"});
}

TEST(TextPatterns, RandomPatternsAgreeWithTheReference) {
    // Small alphabets make overlaps, repeats and boundaries frequent.
    const std::vector<std::string> pieces = {"a", "b", "A", "B", "1", " ", "-", "é", "ö", "\xc3"};
    std::mt19937 random(20261205);
    auto piece = [&] { return pieces[random() % pieces.size()]; };
    for (int round = 0; round < 40; ++round) {
        Both both;
        const int patterns = 1 + static_cast<int>(random() % 30);
        for (int p = 0; p < patterns; ++p) {
            std::string pattern;
            if (random() % 4 == 0) pattern += '*';
            const int length = 1 + static_cast<int>(random() % 5);
            for (int i = 0; i < length; ++i) pattern += piece();
            if (random() % 3 == 0) pattern += '*';
            both.Add(static_cast<std::size_t>(random() % 12), pattern, random() % 6 == 0);
        }
        for (int t = 0; t < 60; ++t) {
            std::string text;
            const int length = static_cast<int>(random() % 24);
            for (int i = 0; i < length; ++i) text += piece();
            both.ExpectSame(text);
        }
    }
}

}  // namespace
}  // namespace microcare::rules
