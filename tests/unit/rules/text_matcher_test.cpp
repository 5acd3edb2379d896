#include <gtest/gtest.h>

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
    both.Add(0, "herpes");
    both.Add(1, "herpes zoster");
    both.Add(2, "zoster");
    both.Add(3, "*ster*");
    both.Add(4, "her*");
    both.Add(5, "*pes");
    for (const char* text : {"herpes zoster", "Herpes Zoster ophthalmicus", "herpeszoster",
                             "herpes zosteroid", "zoster", "oster", "the herpes", "herpe"}) {
        both.ExpectSame(text);
    }
    EXPECT_TRUE(both.index.Match(fhir::Concept{{}, "herpes zoster"}).test(0));
    EXPECT_TRUE(both.index.Match(fhir::Concept{{}, "herpes zoster"}).test(1));
    EXPECT_TRUE(both.index.Match(fhir::Concept{{}, "herpes zoster"}).test(2));
    EXPECT_FALSE(both.index.Match(fhir::Concept{{}, "herpeszoster"}).test(2));
}

TEST(TextPatterns, PatternsThatAreSuffixesOfOthers) {
    // An automaton finds a short pattern inside a long one through its suffix links: "acne" ends
    // inside "cystic acne" and "ne" inside both.
    Both both;
    both.Add(0, "cystic acne");
    both.Add(1, "acne");
    both.Add(2, "*ne");
    both.Add(3, "*cne*");
    for (const char* text : {"cystic acne", "acne", "cystic acnes", "xacne", "ne", "acne ne"}) {
        both.ExpectSame(text);
    }
    EXPECT_EQ(both.index.Match(fhir::Concept{{}, "cystic acne"}).count(), 4u);
}

TEST(TextPatterns, CaseFoldingIsAsciiOnly) {
    Both both;
    both.Add(0, "MicroNeedl*");
    both.Add(1, "sjögren*");
    both.Add(2, "juvéderm");
    for (const char* text : {"MICRONEEDLING", "microneedling", "Sjögren syndrome", "SJöGREN",
                             "SJÖGREN", "Juvéderm", "JUVÉDERM", "juvederm"}) {
        both.ExpectSame(text);
    }
    EXPECT_TRUE(both.index.Match(fhir::Concept{{}, "SJöGREN"}).test(1));
    EXPECT_FALSE(both.index.Match(fhir::Concept{{}, "SJÖGREN"}).test(1));
    EXPECT_FALSE(both.index.Match(fhir::Concept{{}, "JUVÉDERM"}).test(2));
}

TEST(TextPatterns, NonAsciiBytesAreWordCharacters) {
    Both both;
    both.Add(0, "derm");
    both.Add(1, "*derm");
    both.Add(2, "ö*");
    for (const char* text : {"juvéderm", "é derm", "derm€", "derm é", "öl", "xöl", "ö"}) {
        both.ExpectSame(text);
    }
    EXPECT_FALSE(both.index.Match(fhir::Concept{{}, "juvéderm"}).test(0));
    EXPECT_TRUE(both.index.Match(fhir::Concept{{}, "juvéderm"}).test(1));
}

TEST(TextPatterns, WordBoundaries) {
    Both both;
    both.Add(0, "cit");
    both.Add(1, "co2 laser*");
    both.Add(2, "*toxin*");
    for (const char* text :
         {"cit", "(CIT)", "cit-", "elicit", "citrus", "cit2", "co2 laser", "co2 lasers",
          "co2  laser", "xco2 laser", "botulinumtoxinA", "toxin", "cit_x", "cit.x", "x cit"}) {
        both.ExpectSame(text);
    }
}

TEST(TextPatterns, EmptyAndShortTexts) {
    Both both;
    both.Add(0, "ab");
    both.Add(1, "*ab*");
    for (const char* text : {"", "a", "b", "ab", "AB", " ab", "ab "}) both.ExpectSame(text);
    EXPECT_TRUE(both.index.Match(fhir::Concept{{}, ""}).none());
}

TEST(TextPatterns, ExcludedTextCancelsOnlyItsValueSet) {
    Both both;
    both.Add(0, "acne");
    both.Add(0, "acne scar*", true);
    both.Add(1, "*scar*");
    for (const char* text : {"acne", "acne scarring", "Acne scars and acne", "scar"}) {
        both.ExpectSame(text);
    }
    EXPECT_FALSE(both.index.Match(fhir::Concept{{}, "acne scarring"}).test(0));
    EXPECT_TRUE(both.index.Match(fhir::Concept{{}, "acne scarring"}).test(1));
}

TEST(TextPatterns, PatternsTheLoaderRefusesNeverMatch) {
    // CodeIndex takes them; they have never matched anything.
    Both both;
    both.Add(0, "a");
    both.Add(1, "*");
    both.Add(2, "-x");
    both.Add(3, " ab");
    both.Add(4, "**ab");
    for (const char* text : {"a", "-x", "a -x", " ab", "x ab", "*ab", "ab"}) both.ExpectSame(text);
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
