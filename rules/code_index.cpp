#include "rules/code_index.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

namespace microcare::rules {
namespace {

// FNV-1a: codes are short, and an inline loop beats a call into the library's hash for them.
struct StringHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
        std::uint64_t hash = 0xcbf29ce484222325ULL;
        for (unsigned char c : text) hash = (hash ^ c) * 0x100000001b3ULL;
        return static_cast<std::size_t>(hash);
    }
};

template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

bool IsIcd10(std::string_view system) {
    return system == "http://hl7.org/fhir/sid/icd-10-cm" ||
           system == "http://hl7.org/fhir/sid/icd-10";
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
    std::bitset<64> prefix_lengths;  // the lengths some prefix has: only those are looked up
    std::vector<Range> ranges;
};

struct Pattern {
    std::string body;  // lower case, without the stars
    bool open_end = false;
};

// Characters fall into 38 classes (letters, digits, other bytes of words, the rest) so that the
// first two characters of a pattern select its bucket from a small table: each position of a
// text costs one table read, and only the patterns that could start there are compared.
constexpr int kClasses = 38;

constexpr std::array<std::uint8_t, 256> kClassTable = [] {
    std::array<std::uint8_t, 256> table{};
    for (int c = 0; c < 256; ++c) {
        if (c >= 'a' && c <= 'z') table[c] = static_cast<std::uint8_t>(1 + (c - 'a'));
        if (c >= 'A' && c <= 'Z') table[c] = static_cast<std::uint8_t>(1 + (c - 'A'));
        if (c >= '0' && c <= '9') table[c] = static_cast<std::uint8_t>(27 + (c - '0'));
        if (c >= 0x80) table[c] = 37;
    }
    return table;
}();

inline int ClassOf(unsigned char c) { return kClassTable[c]; }

// What a text matched: the value sets of its patterns, and those whose excluded patterns it
// matched.
struct TextMatch {
    ValueSetMask matched;
    ValueSetMask excluded;
};

// Patterns in one flat array, grouped by bucket so that a bucket is one contiguous run.
template <std::size_t kBuckets>
class FlatBuckets {
public:
    FlatBuckets() { starts_.fill(0); }

    void Add(std::string body, std::size_t bucket, std::size_t value_set, bool open_end,
             bool excluded) {
        Entry entry{std::move(body), bucket, static_cast<std::uint16_t>(value_set), open_end,
                    excluded};
        auto at = std::upper_bound(entries_.begin(), entries_.end(), bucket,
                                   [](std::size_t b, const Entry& e) { return b < e.bucket; });
        entries_.insert(at, std::move(entry));
        // Packs are loaded once; rebuilding the offsets on each pattern keeps this simple.
        starts_.fill(0);
        for (const Entry& e : entries_) ++starts_[e.bucket + 1];
        for (std::size_t i = 1; i < starts_.size(); ++i) starts_[i] += starts_[i - 1];
    }

    bool empty() const { return entries_.empty(); }

    // Tries the patterns of `bucket` at position `at` of `s`.
    void MatchAt(std::string_view s, std::size_t at, std::size_t bucket, TextMatch& out) const {
        for (std::uint32_t e = starts_[bucket]; e < starts_[bucket + 1]; ++e) {
            const Entry& entry = entries_[e];
            const std::string& body = entry.body;
            if (at + body.size() > s.size()) continue;
            std::size_t k = 0;
            while (k < body.size() && Lower(s[at + k]) == body[k]) ++k;
            if (k != body.size()) continue;
            const std::size_t end = at + body.size();
            if (entry.open_end || end == s.size() ||
                !IsWordChar(static_cast<unsigned char>(s[end]))) {
                (entry.excluded ? out.excluded : out.matched).set(entry.value_set);
            }
        }
    }

private:
    struct Entry {
        std::string body;  // lower case, without the stars
        std::size_t bucket = 0;
        std::uint16_t value_set = 0;
        bool open_end = false;
        bool excluded = false;
    };

    std::vector<Entry> entries_;
    std::array<std::uint32_t, kBuckets + 1> starts_;
};

// Patterns bucketed by the classes of their first three characters (a hash of them, so that the
// table stays small), or of their first two for two-character patterns: a position of a text
// is compared only with the few patterns that could start there.
class PatternTable {
public:
    void Add(std::string body, std::size_t value_set, bool open_end, bool excluded) {
        first_pairs_.set(Bucket2(body[0], body[1]));
        if (body.size() == 2) {
            const std::size_t bucket = Bucket2(body[0], body[1]);
            short_.Add(std::move(body), bucket, value_set, open_end, excluded);
        } else {
            const std::size_t bucket = Bucket3(body[0], body[1], body[2]);
            long_.Add(std::move(body), bucket, value_set, open_end, excluded);
        }
    }

    bool empty() const { return short_.empty() && long_.empty(); }

    // Most positions start no pattern at all: one bit says so without touching the tables.
    bool MayStart(std::size_t pair) const { return first_pairs_.test(pair); }

    void MatchAt(std::string_view s, std::size_t at, std::size_t pair, TextMatch& out) const {
        short_.MatchAt(s, at, pair, out);
        if (at + 2 < s.size()) long_.MatchAt(s, at, Bucket3(s[at], s[at + 1], s[at + 2]), out);
    }

    static std::size_t Bucket2(char a, char b) {
        return static_cast<std::size_t>(ClassOf(static_cast<unsigned char>(a)) * kClasses +
                                        ClassOf(static_cast<unsigned char>(b)));
    }

private:
    static constexpr std::size_t kLongBuckets = 4096;
    static std::size_t Bucket3(char a, char b, char c) {
        const auto key = static_cast<std::uint32_t>(
            Bucket2(a, b) * kClasses +
            static_cast<std::size_t>(ClassOf(static_cast<unsigned char>(c))));
        return (key * 2654435761u) >> 20;  // 12 bits: kLongBuckets
    }

    std::bitset<kClasses * kClasses> first_pairs_;
    FlatBuckets<kClasses * kClasses> short_;
    FlatBuckets<kLongBuckets> long_;
};

// Word-anchored patterns are tried at the start of each word; the few infix ones (`*toxin*`)
// at every position.
class TextPatterns {
public:
    void Add(std::size_t value_set, std::string_view pattern, bool excluded) {
        const bool anchored = !pattern.starts_with('*');
        if (!anchored) pattern.remove_prefix(1);
        const bool open_end = pattern.ends_with('*');
        if (open_end) pattern.remove_suffix(1);
        if (pattern.size() < 2) return;  // the loader refuses these
        std::string body;
        body.reserve(pattern.size());
        for (char c : pattern) body += Lower(c);
        (anchored ? anchored_ : infix_).Add(std::move(body), value_set, open_end, excluded);
    }

    void Match(std::string_view s, TextMatch& out) const {
        if (s.size() < 2 || (anchored_.empty() && infix_.empty())) return;
        bool previous_is_word = false;
        for (std::size_t i = 0; i + 1 < s.size(); ++i) {
            const int first = ClassOf(static_cast<unsigned char>(s[i]));
            if (first == 0) {
                previous_is_word = false;
                continue;
            }
            const std::size_t pair = static_cast<std::size_t>(
                first * kClasses + ClassOf(static_cast<unsigned char>(s[i + 1])));
            if (!previous_is_word && anchored_.MayStart(pair)) anchored_.MatchAt(s, i, pair, out);
            if (infix_.MayStart(pair)) infix_.MatchAt(s, i, pair, out);
            previous_is_word = true;
        }
    }

private:
    PatternTable anchored_;
    PatternTable infix_;
};

ValueSetMask MatchCode(const SystemCodes& codes, std::string_view code) {
    ValueSetMask mask;
    if (auto it = codes.codes.find(code); it != codes.codes.end()) mask |= it->second;
    for (std::size_t n = 1; n <= code.size() && n < codes.prefix_lengths.size(); ++n) {
        if (!codes.prefix_lengths.test(n)) continue;
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

}  // namespace

struct CodeIndex::Impl {
    // A pack uses a handful of code systems: comparing their URIs beats hashing them.
    std::vector<std::pair<std::string, SystemCodes>> systems;
    TextPatterns text;

    SystemCodes& System(std::string_view system) {
        for (auto& [uri, codes] : systems) {
            if (uri == system) return codes;
        }
        return systems.emplace_back(std::string(system), SystemCodes{}).second;
    }

    const SystemCodes* Find(std::string_view system) const {
        for (const auto& [uri, codes] : systems) {
            if (uri.size() == system.size() && uri == system) return &codes;
        }
        return nullptr;
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
    if (key.empty() || key.size() >= codes.prefix_lengths.size())
        return;  // the loader refuses these
    codes.prefix_lengths.set(key.size());
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
    impl_->text.Add(value_set, pattern, false);
}

void CodeIndex::AddExcludedText(std::size_t value_set, std::string_view pattern) {
    impl_->text.Add(value_set, pattern, true);
}

ValueSetMask CodeIndex::MatchCoding(const fhir::Coding& coding) const {
    if (coding.code.empty()) return {};
    const SystemCodes* system = impl_->Find(coding.system);
    if (system == nullptr) return {};
    CodeKey key(coding.system, coding.code);
    return MatchCode(*system, key.view());
}

ValueSetMask CodeIndex::Match(const fhir::Concept& concept_value) const {
    ValueSetMask by_code;
    ValueSetMask excluded;
    TextMatch text;
    // A concept's text often repeats a display: each distinct string is scanned once.
    std::string_view scanned[4];
    std::size_t scanned_count = 0;
    auto scan_text = [&](std::string_view s) {
        if (s.empty()) return;
        for (std::size_t i = 0; i < scanned_count; ++i) {
            if (scanned[i] == s) return;
        }
        if (scanned_count < std::size(scanned)) scanned[scanned_count++] = s;
        impl_->text.Match(s, text);
    };
    for (const fhir::Coding& coding : concept_value.codings) {
        scan_text(coding.display);
        const SystemCodes* system = impl_->Find(coding.system);
        if (system == nullptr || coding.code.empty()) continue;
        CodeKey key(coding.system, coding.code);
        by_code |= MatchCode(*system, key.view());
        if (auto it = system->excluded.find(key.view()); it != system->excluded.end()) {
            excluded |= it->second;
        }
    }
    scan_text(concept_value.text);
    return (by_code | (text.matched & ~text.excluded)) & ~excluded;
}

}  // namespace microcare::rules
