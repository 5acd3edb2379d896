#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fhir/patient_record.hpp"
#include "rules/value_set_mask.hpp"

namespace microcare::rules {

// Every code, prefix, range and text pattern of every value set of a pack, indexed once at load
// time so that a concept is classified against all value sets in one pass: a hash lookup per
// coding and one automaton step per byte of text, whatever the number of rules.
class CodeIndex {
public:
    CodeIndex();
    ~CodeIndex();
    CodeIndex(CodeIndex&&) noexcept;
    CodeIndex& operator=(CodeIndex&&) noexcept;

    void AddCode(std::size_t value_set, std::string_view system, std::string_view code);
    void AddPrefix(std::size_t value_set, std::string_view system, std::string_view prefix);
    void AddRange(std::size_t value_set, std::string_view system, std::string_view from,
                  std::string_view to);
    void AddExclusion(std::size_t value_set, std::string_view system, std::string_view code);
    // `pattern` as documented in config/README.md (`word`, `prefix*`, `*infix*`).
    void AddText(std::size_t value_set, std::string_view pattern);
    void AddExcludedText(std::size_t value_set, std::string_view pattern);
    // Builds the text automaton now rather than on the first Match (which does it if needed).
    void Build() const;

    // The value sets the concept belongs to. A concept with a coding a value set excludes never
    // belongs to it. Repeated concepts are answered from a per-thread cache
    // (ConceptMatchCache).
    ValueSetMask Match(const fhir::Concept& concept_value) const;
    // Value sets whose codes (not text) contain this coding.
    ValueSetMask MatchCoding(const fhir::Coding& coding) const;

private:
    ValueSetMask MatchUncached(const fhir::Concept& concept_value) const;

    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// ICD-10 codes are compared without their dot (`L70.0` = `L700`).
std::string NormalizeCode(std::string_view system, std::string_view code);

}  // namespace microcare::rules
