#pragma once

#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/client/http_client.hpp"
#include "adapter/error.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {

// Every entry.resource of every page of a search, parsed once: `resources` view into `pages`,
// which live as long as this object does (moving it moves neither).
struct SearchResult {
    std::vector<fhir::JsonDocument> pages;
    std::vector<fhir::Node> resources;
    std::optional<HttpResponse> failure;  // a non-2xx page, with what came before it
    std::size_t page_count = 0;
};

// What MicroCare asks of the EHR's FHIR REST API. FhirClient speaks it over HTTP(S) with the
// configured credentials; tests put an in-memory EHR behind it. Paths are relative to the
// EHR's base URL.
class Ehr {
public:
    virtual ~Ehr() = default;

    virtual boost::asio::awaitable<Result<HttpResponse>> Get(std::string path_or_url) = 0;
    virtual boost::asio::awaitable<Result<HttpResponse>> Post(std::string path,
                                                              std::string body) = 0;
    // Runs a search (`Condition?patient=Patient/1`) and follows its `next` links. A search that
    // cannot be read whole is an error rather than a short answer, since a missing page could
    // hide a contraindication.
    virtual boost::asio::awaitable<Result<SearchResult>> SearchAll(std::string query) = 0;
};

// How MicroCare treats an EHR's answer, in one place for every request it makes.
enum class EhrAnswer {
    kSuccess,      // 2xx
    kTransient,    // 408, 429, 5xx: try again later, honouring Retry-After
    kUnsupported,  // an optional feature the EHR does not offer: take another way
    kPermanent,    // final: the EHR refused this request
};
// `optional_feature`: a request some EHRs do not serve (a batch, `$events`); then 400, 404,
// 405, 415, 422 and 501 mean "not here" (kUnsupported) rather than a refusal or a fault.
EhrAnswer Classify(unsigned status, bool optional_feature = false);
// The status of a batch or transaction entry's `response.status` ("201 Created" -> 201); 0 when
// it does not begin with one.
unsigned EntryStatus(std::string_view response_status);

}  // namespace microcare::adapter
