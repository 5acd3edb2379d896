#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "adapter/error.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {

// One page of a FHIR search answer: its entries' resources (views into `document`) and the
// `next` link to follow, already checked. Shared by FhirClient::SearchAll, which reads every
// page before it answers, and the poller, which journals each page before it reads the next.
struct SearchPage {
    fhir::JsonDocument document;
    std::vector<fhir::Node> resources;
    std::string next;  // normal form, at or below the base; empty on the last page
};

// Parses a 2xx search answer. kBadResponse for a body that is no Bundle, and for a `next` link
// that leads away from `base_url` (the EHR's base, as configured): it would take our token
// with it. A relative `next` is resolved against the base.
Result<SearchPage> ParseSearchPage(const std::string& body, std::string_view base_url);

// `path_or_url` as is when absolute, else joined to `base_url` (whose trailing `/` may be
// there or not).
std::string ResolveAgainstBase(std::string_view base_url, std::string_view path_or_url);

}  // namespace microcare::adapter
