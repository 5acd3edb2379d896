#pragma once

#include <string_view>

namespace microcare::fhir {

// A FHIR `id`: 1 to 64 of A-Z a-z 0-9 - . (also the form of MicroCare's own pack and rule ids),
// except `.` and `..`: the grammar allows them, but an id becomes a URL path segment, where they
// are dot segments (`GET Encounter/.` is a search that returns every Encounter).
inline bool IsFhirId(std::string_view text) {
    if (text.empty() || text.size() > 64 || text == "." || text == "..") return false;
    for (char c : text) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.')) {
            return false;
        }
    }
    return true;
}

}  // namespace microcare::fhir
