#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "rules/value_set_mask.hpp"

namespace microcare::rules {

// What a text matched: the value sets of its patterns, and those whose excluded patterns it
// matched.
struct TextMatch {
    ValueSetMask matched;
    ValueSetMask excluded;
};

// Every text pattern of a pack (`word`, `prefix*`, `*infix*`, config/README.md) in one
// Aho–Corasick automaton: a text is read once, one table step per byte, whatever the number of
// patterns; word boundaries are checked only where a pattern ends.
class TextMatcher {
public:
    void Add(std::size_t value_set, std::string_view pattern, bool excluded);
    // After the last Add and before any Scan.
    void Build();
    void Scan(std::string_view text, TextMatch& out) const;

private:
    // A pattern as seen where it ends: enough to check its boundaries without its text.
    struct Output {
        std::uint16_t length = 0;
        std::uint16_t value_set = 0;
        bool anchored = true;
        bool open_end = false;
        bool excluded = false;
    };
    struct Pattern {
        std::vector<std::uint8_t> body;  // lower case, without the stars
        Output output;
    };

    template <typename T>
    void Run(const std::vector<T>& next, std::string_view text, TextMatch& out) const;
    void Report(std::string_view text, std::size_t end, std::uint32_t state, TextMatch& out) const;

    std::vector<Pattern> patterns_;
    // Bytes fold into the classes of the bytes patterns use (ASCII case folded); all others are
    // class 0, which leads back to the root.
    std::array<std::uint8_t, 256> classes_{};
    std::uint32_t class_count_ = 1;
    // next[state * class_count_ + class]: the next state, times 2, plus 1 if some pattern ends
    // there. 16 bits when the states fit (a pack's ~5,000 do): half the table, which then stays
    // in the L2 cache.
    std::vector<std::uint16_t> next16_;
    std::vector<std::uint32_t> next32_;
    std::vector<std::uint32_t> output_begin_;  // per state, into outputs_; one more at the end
    std::vector<Output> outputs_;
};

}  // namespace microcare::rules
