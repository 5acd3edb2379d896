#pragma once

#include <cstdint>
#include <utility>

#include "fhir/patient_record.hpp"
#include "rules/value_set_mask.hpp"

namespace microcare::rules {

// The value sets of recently seen concepts, kept per thread: records repeat the same codings
// and displays ("Acne vulgaris", "Isotretinoin 20 MG Oral Capsule") within a record and from
// patient to patient, and one hash look-up costs less than the code look-ups and the text scan.
// Per thread, so evaluations never wait on each other; keyed by a generation that changes with
// every change to the index, so a reloaded pack never sees the matches of the one before.
class ConceptMatchCache {
public:
    // The cached value sets of `concept_value`, or those `compute()` gives (then kept).
    template <typename Compute>
    static ValueSetMask Match(std::uint64_t generation, const fhir::Concept& concept_value,
                              Compute compute) {
        auto [slot, is_new] = Slot(generation, concept_value);
        if (slot == nullptr) return compute();
        if (is_new) *slot = compute();
        return *slot;
    }

    // A number no index state had before: each CodeIndex takes one whenever it changes.
    static std::uint64_t NewGeneration();

private:
    // The concept's entry (is_new: still to be filled), or nullptr for a concept too large to
    // be worth keeping.
    static std::pair<ValueSetMask*, bool> Slot(std::uint64_t generation,
                                               const fhir::Concept& concept_value);
};

}  // namespace microcare::rules
