#pragma once

#include <bitset>
#include <cstddef>

namespace microcare::rules {

inline constexpr std::size_t kMaxValueSets = 512;
// The value sets a concept belongs to, one bit per value set of the pack.
using ValueSetMask = std::bitset<kMaxValueSets>;

}  // namespace microcare::rules
