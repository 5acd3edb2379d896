#pragma once

#include <string>

namespace microcare::rules {

// Which rule pack is in force: what its author calls it (id, version) and what was actually
// loaded (the SHA-256 of its canonical content, value-set files included; see LoadRuleSet).
// Two packs with the same version but different content differ here.
struct PackIdentity {
    std::string id;
    std::string version;
    std::string sha256;
};

}  // namespace microcare::rules
