#pragma once

#include <cstdint>
#include <string_view>
#include <utility>

#include "rules/value_set_mask.hpp"

namespace microcare::rules {

// The value sets of recently seen concepts, kept per thread: records repeat the same codings
// and displays ("Acne vulgaris", "Isotretinoin 20 MG Oral Capsule") within a record and from
// patient to patient, and one hash look-up costs less than the code look-ups and the text scan.
// Per thread, so evaluations never wait on each other; keyed by a generation that changes with
// every change to the index, so a reloaded pack never sees the matches of the one before.
class ConceptMatchCache {
public:
    // The cached value sets of the concept `key` stands for (all that decides its match, each
    // field with its length before it), or those `compute()` gives (then kept).
    template <typename Compute>
    static ValueSetMask Match(std::uint64_t generation, std::string_view key, Compute compute) {
        auto [slot, is_new] = Slot(generation, key);
        if (slot == nullptr) return compute();
        if (is_new) *slot = compute();
        return *slot;
    }

    // A number no index state had before: each CodeIndex takes one whenever it changes.
    static std::uint64_t NewGeneration();

private:
    // The concept's entry (is_new: still to be filled), or nullptr for a concept too large to
    // be worth keeping.
    static std::pair<ValueSetMask*, bool> Slot(std::uint64_t generation, std::string_view key);
};

}  // namespace microcare::rules
