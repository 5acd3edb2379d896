#include "rules/text_matcher.hpp"

#include <limits>

namespace microcare::rules {
namespace {

bool IsWordChar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

std::uint8_t Lower(std::uint8_t c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<std::uint8_t>(c - 'A' + 'a') : c;
}

constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

}  // namespace

void TextMatcher::Add(std::size_t value_set, std::string_view pattern, bool excluded) {
    Pattern p;
    p.output.anchored = !pattern.starts_with('*');
    if (!p.output.anchored) pattern.remove_prefix(1);
    p.output.open_end = pattern.ends_with('*');
    if (p.output.open_end) pattern.remove_suffix(1);
    // The loader refuses both; a pattern that starts with no letter or digit has never matched,
    // since matches start where a word character is.
    if (pattern.size() < 2 || !IsWordChar(static_cast<unsigned char>(pattern[0]))) return;
    if (pattern.size() > std::numeric_limits<std::uint16_t>::max()) return;
    for (char c : pattern) p.body.push_back(Lower(static_cast<std::uint8_t>(c)));
    p.output.length = static_cast<std::uint16_t>(pattern.size());
    p.output.value_set = static_cast<std::uint16_t>(value_set);
    p.output.excluded = excluded;
    patterns_.push_back(std::move(p));
}

void TextMatcher::Build() {
    classes_.fill(0);
    class_count_ = 1;
    for (const Pattern& p : patterns_) {
        for (std::uint8_t c : p.body) {
            if (classes_[c] == 0) classes_[c] = static_cast<std::uint8_t>(class_count_++);
        }
    }
    for (int c = 'A'; c <= 'Z'; ++c) classes_[c] = classes_[c + ('a' - 'A')];
    const std::uint32_t k = class_count_;

    // The trie: go[state * k + class], kNone where it has no edge; the patterns ending at each
    // state.
    std::vector<std::uint32_t> go(k, kNone);
    std::vector<std::vector<std::uint32_t>> ends(1);
    for (std::uint32_t i = 0; i < patterns_.size(); ++i) {
        std::uint32_t state = 0;
        for (std::uint8_t c : patterns_[i].body) {
            std::uint32_t& edge = go[state * k + classes_[c]];
            if (edge == kNone) {
                edge = static_cast<std::uint32_t>(ends.size());
                ends.emplace_back();
                go.resize(go.size() + k, kNone);
            }
            state = go[state * k + classes_[c]];
        }
        ends[state].push_back(i);
    }
    const auto states = static_cast<std::uint32_t>(ends.size());

    // Breadth first, each state's missing edges become those of its longest proper suffix in
    // the trie (its failure state), and it reports the patterns that suffix reports.
    std::vector<std::uint32_t> fail(states, 0);
    std::vector<std::vector<Output>> reports(states);
    std::vector<std::uint32_t> queue;
    queue.reserve(states);
    for (std::uint32_t c = 0; c < k; ++c) {
        if (go[c] == kNone) {
            go[c] = 0;
        } else {
            queue.push_back(go[c]);
        }
    }
    for (std::size_t head = 0; head < queue.size(); ++head) {
        const std::uint32_t state = queue[head];
        for (std::uint32_t i : ends[state]) reports[state].push_back(patterns_[i].output);
        const auto& inherited = reports[fail[state]];
        reports[state].insert(reports[state].end(), inherited.begin(), inherited.end());
        for (std::uint32_t c = 0; c < k; ++c) {
            std::uint32_t& edge = go[state * k + c];
            const std::uint32_t fallback = go[fail[state] * k + c];
            if (edge == kNone) {
                edge = fallback;
            } else {
                fail[edge] = fallback;
                queue.push_back(edge);
            }
        }
    }

    next16_.clear();
    next32_.clear();
    const bool narrow = states <= std::numeric_limits<std::uint16_t>::max() / 2;
    for (std::uint32_t target : go) {
        const std::uint32_t step = target * 2 + (reports[target].empty() ? 0 : 1);
        if (narrow) {
            next16_.push_back(static_cast<std::uint16_t>(step));
        } else {
            next32_.push_back(step);
        }
    }
    output_begin_.assign(1, 0);
    outputs_.clear();
    for (const auto& list : reports) {
        outputs_.insert(outputs_.end(), list.begin(), list.end());
        output_begin_.push_back(static_cast<std::uint32_t>(outputs_.size()));
    }
}

void TextMatcher::Scan(std::string_view text, TextMatch& out) const {
    if (!next16_.empty()) Run(next16_, text, out);
    if (!next32_.empty()) Run(next32_, text, out);
}

template <typename T>
void TextMatcher::Run(const std::vector<T>& next, std::string_view text, TextMatch& out) const {
    std::uint32_t state = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const std::uint32_t step =
            next[state * class_count_ + classes_[static_cast<unsigned char>(text[i])]];
        state = step >> 1;
        if (step & 1) Report(text, i + 1, state, out);
    }
}

void TextMatcher::Report(std::string_view text, std::size_t end, std::uint32_t state,
                         TextMatch& out) const {
    for (std::uint32_t i = output_begin_[state]; i < output_begin_[state + 1]; ++i) {
        const Output& o = outputs_[i];
        const std::size_t start = end - o.length;
        if (o.anchored && start > 0 && IsWordChar(static_cast<unsigned char>(text[start - 1]))) {
            continue;
        }
        if (!o.open_end && end < text.size() && IsWordChar(static_cast<unsigned char>(text[end]))) {
            continue;
        }
        (o.excluded ? out.excluded : out.matched).set(o.value_set);
    }
}

}  // namespace microcare::rules
