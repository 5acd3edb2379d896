#include "rules/code_index.hpp"

#include <algorithm>
#include <array>

namespace microcare::rules {
namespace {

struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
        return std::hash<std::string_view>{}(text);
    }
};

template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

bool IsIcd10(std::string_view system) {
    return system == "http://hl7.org/fhir/sid/icd-10-cm" || system == "http://hl7.org/fhir/sid/icd-10";
}

bool IsWordChar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80;
}

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// A code without the dots ICD-10 may or may not carry, in a buffer that needs no allocation
// for any real code.
class CodeKey {
public:
    CodeKey(std::string_view system, std::string_view code) {
        if (!IsIcd10(system) || code.find('.') == std::string_view::npos) {
            view_ = code;
            return;
        }
        if (code.size() > buffer_.size()) {
            owned_ = NormalizeCode(system, code);
            view_ = owned_;
            return;
        }
        std::size_t n = 0;
        for (char c : code) {
            if (c != '.') buffer_[n++] = c;
        }
        view_ = std::string_view(buffer_.data(), n);
    }
    std::string_view view() const { return view_; }

private:
    std::array<char, 32> buffer_{};
    std::string owned_;
    std::string_view view_;
};

struct Range {
    std::string from;
    std::string to;
    std::size_t value_set;
};

struct SystemCodes {
    StringMap<ValueSetMask> codes;
    StringMap<ValueSetMask> prefixes;
    StringMap<ValueSetMask> excluded;
    std::size_t longest_prefix = 0;
    std::vector<Range> ranges;
};

struct Pattern {
    std::string body;  // lower case, without the stars
    bool open_end = false;
    std::size_t value_set = 0;
};

// Text patterns keyed by their first two characters, so that each word of a text is compared
// only with the patterns that could start there.
class TextPatterns {
public:
    void Add(std::size_t value_set, std::string_view pattern) {
        Pattern p;
        p.value_set = value_set;
        bool infix = pattern.starts_with('*');
        if (infix) pattern.remove_prefix(1);
        p.open_end = pattern.ends_with('*');
        if (p.open_end) pattern.remove_suffix(1);
        p.body.reserve(pattern.size());
        for (char c : pattern) p.body += Lower(c);
        if (p.body.empty()) return;
        if (infix || p.body.size() < 2) {
            infix_.push_back(std::move(p));
        } else {
            anchored_[p.body.substr(0, 2)].push_back(std::move(p));
        }
    }

    ValueSetMask Match(std::string_view text) const {
        ValueSetMask mask;
        if (text.empty() || (anchored_.empty() && infix_.empty())) return mask;
        thread_local std::string lower;
        lower.resize(text.size());
        std::transform(text.begin(), text.end(), lower.begin(), Lower);
        const std::string_view s = lower;
        auto ends_word = [&s](std::size_t end) {
            return end == s.size() || !IsWordChar(static_cast<unsigned char>(s[end]));
        };
        for (std::size_t i = 0; i + 1 < s.size(); ++i) {
            if (!IsWordChar(static_cast<unsigned char>(s[i])) ||
                (i > 0 && IsWordChar(static_cast<unsigned char>(s[i - 1])))) {
                continue;
            }
            auto it = anchored_.find(s.substr(i, 2));
            if (it == anchored_.end()) continue;
            for (const Pattern& p : it->second) {
                if (s.compare(i, p.body.size(), p.body) == 0 &&
                    (p.open_end || ends_word(i + p.body.size()))) {
                    mask.set(p.value_set);
                }
            }
        }
        for (const Pattern& p : infix_) {
            for (auto at = s.find(p.body); at != std::string_view::npos;
                 at = s.find(p.body, at + 1)) {
                if (p.open_end || ends_word(at + p.body.size())) {
                    mask.set(p.value_set);
                    break;
                }
            }
        }
        return mask;
    }

private:
    StringMap<std::vector<Pattern>> anchored_;
    std::vector<Pattern> infix_;
};

}  // namespace

struct CodeIndex::Impl {
    StringMap<SystemCodes> systems;
    TextPatterns text;
    TextPatterns excluded_text;

    SystemCodes& System(std::string_view system) {
        auto it = systems.find(system);
        if (it == systems.end()) it = systems.emplace(std::string(system), SystemCodes{}).first;
        return it->second;
    }
};

CodeIndex::CodeIndex() : impl_(std::make_unique<Impl>()) {}
CodeIndex::~CodeIndex() = default;
CodeIndex::CodeIndex(CodeIndex&&) noexcept = default;
CodeIndex& CodeIndex::operator=(CodeIndex&&) noexcept = default;

std::string NormalizeCode(std::string_view system, std::string_view code) {
    std::string result(code);
    if (IsIcd10(system)) std::erase(result, '.');
    return result;
}

void CodeIndex::AddCode(std::size_t value_set, std::string_view system, std::string_view code) {
    impl_->System(system).codes[NormalizeCode(system, code)].set(value_set);
}

void CodeIndex::AddPrefix(std::size_t value_set, std::string_view system, std::string_view prefix) {
    SystemCodes& codes = impl_->System(system);
    std::string key = NormalizeCode(system, prefix);
    codes.longest_prefix = std::max(codes.longest_prefix, key.size());
    codes.prefixes[key].set(value_set);
}

void CodeIndex::AddRange(std::size_t value_set, std::string_view system, std::string_view from,
                         std::string_view to) {
    impl_->System(system).ranges.push_back(
        Range{NormalizeCode(system, from), NormalizeCode(system, to), value_set});
}

void CodeIndex::AddExclusion(std::size_t value_set, std::string_view system,
                             std::string_view code) {
    impl_->System(system).excluded[NormalizeCode(system, code)].set(value_set);
}

void CodeIndex::AddText(std::size_t value_set, std::string_view pattern) {
    impl_->text.Add(value_set, pattern);
}

void CodeIndex::AddExcludedText(std::size_t value_set, std::string_view pattern) {
    impl_->excluded_text.Add(value_set, pattern);
}

ValueSetMask CodeIndex::MatchCoding(const fhir::Coding& coding) const {
    ValueSetMask mask;
    if (coding.code.empty()) return mask;
    auto system = impl_->systems.find(coding.system);
    if (system == impl_->systems.end()) return mask;
    const SystemCodes& codes = system->second;
    CodeKey key(coding.system, coding.code);
    std::string_view code = key.view();
    if (auto it = codes.codes.find(code); it != codes.codes.end()) mask |= it->second;
    for (std::size_t n = 1, last = std::min(code.size(), codes.longest_prefix); n <= last; ++n) {
        if (auto it = codes.prefixes.find(code.substr(0, n)); it != codes.prefixes.end()) {
            mask |= it->second;
        }
    }
    for (const Range& range : codes.ranges) {
        std::string_view head = code.substr(0, range.from.size());
        if (head.size() == range.from.size() && head >= range.from && head <= range.to) {
            mask.set(range.value_set);
        }
    }
    return mask;
}

ValueSetMask CodeIndex::MatchText(std::string_view text) const { return impl_->text.Match(text); }

ValueSetMask CodeIndex::MatchExcludedText(std::string_view text) const {
    return impl_->excluded_text.Match(text);
}

ValueSetMask CodeIndex::Match(const fhir::Concept& concept_value) const {
    ValueSetMask by_code;
    ValueSetMask by_text;
    ValueSetMask excluded_text;
    ValueSetMask excluded;
    auto scan_text = [&](std::string_view text) {
        if (text.empty()) return;
        by_text |= impl_->text.Match(text);
        excluded_text |= impl_->excluded_text.Match(text);
    };
    for (const fhir::Coding& coding : concept_value.codings) {
        by_code |= MatchCoding(coding);
        scan_text(coding.display);
        if (auto system = impl_->systems.find(coding.system); system != impl_->systems.end()) {
            CodeKey key(coding.system, coding.code);
            if (auto it = system->second.excluded.find(key.view());
                it != system->second.excluded.end()) {
                excluded |= it->second;
            }
        }
    }
    scan_text(concept_value.text);
    return (by_code | (by_text & ~excluded_text)) & ~excluded;
}

}  // namespace microcare::rules
