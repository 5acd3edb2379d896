#include "rules/concept_match_cache.hpp"

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace microcare::rules {
namespace {

struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view text) const {
        return std::hash<std::string_view>{}(text);
    }
};

// Enough for the distinct concepts of many records; when full it starts again rather than
// track what is oldest, which keeps a hit one look-up.
constexpr std::size_t kMaxEntries = 4096;
// Larger concepts (long free text) are matched each time: they rarely repeat.
constexpr std::size_t kMaxKey = 512;

struct Entries {
    std::uint64_t generation = 0;
    std::unordered_map<std::string, ValueSetMask, Hash, std::equal_to<>> masks;
};

std::atomic<std::uint64_t> next_generation{1};

}  // namespace

std::uint64_t ConceptMatchCache::NewGeneration() {
    return next_generation.fetch_add(1, std::memory_order_relaxed);
}

std::pair<ValueSetMask*, bool> ConceptMatchCache::Slot(std::uint64_t generation,
                                                       std::string_view key) {
    thread_local Entries entries;
    if (key.size() > kMaxKey) return {nullptr, false};
    if (entries.generation != generation) {
        entries.masks.clear();
        entries.generation = generation;
    }
    if (auto it = entries.masks.find(key); it != entries.masks.end()) return {&it->second, false};
    if (entries.masks.size() >= kMaxEntries) entries.masks.clear();
    return {&entries.masks.emplace(std::string(key), ValueSetMask{}).first->second, true};
}

}  // namespace microcare::rules
