#include "rules/code_index.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <bitset>
#include <cstdint>
#include <mutex>
#include <string>

#include "rules/concept_match_cache.hpp"
#include "rules/text_matcher.hpp"

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

// A code's value sets and the value sets that exclude it, side by side: one look-up finds both.
struct CodeMasks {
    ValueSetMask included;
    ValueSetMask excluded;
};

struct SystemCodes {
    StringMap<CodeMasks> codes;
    StringMap<ValueSetMask> prefixes;
    std::bitset<64> prefix_lengths;  // the lengths some prefix has: only those are looked up
    std::vector<Range> ranges;
};

// The value sets whose codes, prefixes or ranges hold `code`; those that exclude it are added
// to `excluded`.
ValueSetMask MatchCode(const SystemCodes& codes, std::string_view code, ValueSetMask& excluded) {
    ValueSetMask mask;
    if (auto it = codes.codes.find(code); it != codes.codes.end()) {
        mask |= it->second.included;
        excluded |= it->second.excluded;
    }
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
    TextMatcher text;
    // Built on the first match after a pattern was added (the loader builds it before the pack
    // is shared); evaluations on several threads may race to that first match.
    std::atomic<bool> text_built{false};
    // Changes with every Add: what ConceptMatchCache keeps is valid for one state of the index.
    std::uint64_t generation = ConceptMatchCache::NewGeneration();
    std::mutex build_mutex;

    const TextMatcher& Text() {
        if (!text_built.load(std::memory_order_acquire)) {
            std::lock_guard lock(build_mutex);
            if (!text_built.load(std::memory_order_relaxed)) {
                text.Build();
                text_built.store(true, std::memory_order_release);
            }
        }
        return text;
    }

    SystemCodes& System(std::string_view system) {
        for (auto& [uri, codes] : systems) {
            if (uri == system) return codes;
        }
        return systems.emplace_back(std::string(system), SystemCodes{}).second;
    }

    const SystemCodes* Find(std::string_view system) const {
        const std::size_t i = SystemNumber(system);
        return i < systems.size() ? &systems[i].second : nullptr;
    }

    // The system's position in `systems`, or systems.size() if the pack has no code of it.
    std::size_t SystemNumber(std::string_view system) const {
        for (std::size_t i = 0; i < systems.size(); ++i) {
            const std::string& uri = systems[i].first;
            if (uri.size() == system.size() && uri == system) return i;
        }
        return systems.size();
    }

    // What decides a concept's match, for ConceptMatchCache: its text and, per coding, the
    // system's number (not its long URI), the code if the pack knows the system (it plays no
    // part otherwise) and the display. Each string has its length before it, so two concepts
    // never share a key.
    std::string_view Key(const fhir::Concept& concept_value) const {
        thread_local std::string key;  // reused: building a key allocates nothing
        key.clear();
        auto append = [](std::string_view field) {
            const auto size = static_cast<std::uint32_t>(field.size());
            key.append(reinterpret_cast<const char*>(&size), sizeof size);
            key.append(field);
        };
        append(concept_value.text);
        for (const fhir::Coding& coding : concept_value.codings) {
            const std::size_t system = SystemNumber(coding.system);
            key.append(reinterpret_cast<const char*>(&system), sizeof system);
            append(system < systems.size() ? coding.code : std::string_view());
            append(coding.display);
        }
        return key;
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
    impl_->generation = ConceptMatchCache::NewGeneration();
    impl_->System(system).codes[NormalizeCode(system, code)].included.set(value_set);
}

void CodeIndex::AddPrefix(std::size_t value_set, std::string_view system, std::string_view prefix) {
    impl_->generation = ConceptMatchCache::NewGeneration();
    SystemCodes& codes = impl_->System(system);
    std::string key = NormalizeCode(system, prefix);
    if (key.empty() || key.size() >= codes.prefix_lengths.size())
        return;  // the loader refuses these
    codes.prefix_lengths.set(key.size());
    codes.prefixes[key].set(value_set);
}

void CodeIndex::AddRange(std::size_t value_set, std::string_view system, std::string_view from,
                         std::string_view to) {
    impl_->generation = ConceptMatchCache::NewGeneration();
    impl_->System(system).ranges.push_back(
        Range{NormalizeCode(system, from), NormalizeCode(system, to), value_set});
}

void CodeIndex::AddExclusion(std::size_t value_set, std::string_view system,
                             std::string_view code) {
    impl_->generation = ConceptMatchCache::NewGeneration();
    impl_->System(system).codes[NormalizeCode(system, code)].excluded.set(value_set);
}

void CodeIndex::AddText(std::size_t value_set, std::string_view pattern) {
    impl_->generation = ConceptMatchCache::NewGeneration();
    impl_->text.Add(value_set, pattern, false);
    impl_->text_built = false;
}

void CodeIndex::AddExcludedText(std::size_t value_set, std::string_view pattern) {
    impl_->generation = ConceptMatchCache::NewGeneration();
    impl_->text.Add(value_set, pattern, true);
    impl_->text_built = false;
}

void CodeIndex::Build() const { impl_->Text(); }

ValueSetMask CodeIndex::MatchCoding(const fhir::Coding& coding) const {
    if (coding.code.empty()) return {};
    const SystemCodes* system = impl_->Find(coding.system);
    if (system == nullptr) return {};
    CodeKey key(coding.system, coding.code);
    ValueSetMask excluded;  // MatchCoding is about codes only, exclusions aside
    return MatchCode(*system, key.view(), excluded);
}

ValueSetMask CodeIndex::Match(const fhir::Concept& concept_value) const {
    return ConceptMatchCache::Match(impl_->generation, impl_->Key(concept_value),
                                    [&] { return MatchUncached(concept_value); });
}

ValueSetMask CodeIndex::MatchUncached(const fhir::Concept& concept_value) const {
    ValueSetMask by_code;
    ValueSetMask excluded;
    const TextMatcher& matcher = impl_->Text();
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
        matcher.Scan(s, text);
    };
    for (const fhir::Coding& coding : concept_value.codings) {
        scan_text(coding.display);
        const SystemCodes* system = impl_->Find(coding.system);
        if (system == nullptr || coding.code.empty()) continue;
        CodeKey key(coding.system, coding.code);
        by_code |= MatchCode(*system, key.view(), excluded);
    }
    scan_text(concept_value.text);
    return (by_code | (text.matched & ~text.excluded)) & ~excluded;
}

}  // namespace microcare::rules
