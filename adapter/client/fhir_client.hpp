#pragma once

#include <boost/asio/awaitable.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/client/ehr.hpp"
#include "adapter/client/http_client.hpp"
#include "adapter/client/smart_auth.hpp"
#include "adapter/error.hpp"

namespace microcare::adapter {

struct FhirClientOptions {
    std::string base_url;        // e.g. https://ehr.example/fhir (no trailing slash needed)
    std::size_t max_pages = 50;  // pages read per search at most, the first one included
};

// The EHR's FHIR REST API over HTTP(S): reads, searches that follow `next` links, and posts,
// with the configured authorisation. Relative paths are relative to the base URL.
class FhirClient : public Ehr {
public:
    FhirClient(HttpClient& http, AuthProvider& auth, FhirClientOptions options);

    boost::asio::awaitable<Result<HttpResponse>> Get(std::string path_or_url) override;
    boost::asio::awaitable<Result<HttpResponse>> Post(std::string path, std::string body) override;

    // A non-2xx page is returned in `failure`. kBadResponse for a page that is no Bundle, a
    // `next` link seen before, or one leading away from the base URL (it would get our token);
    // kResponseTooLarge when more than max_pages pages would be needed.
    boost::asio::awaitable<Result<SearchResult>> SearchAll(std::string query) override;

    const std::string& base_url() const { return options_.base_url; }

private:
    boost::asio::awaitable<Result<HttpResponse>> Send(HttpRequest request);
    // `path_or_url` as is when absolute, else joined to the base URL; Send() refuses what is
    // not an http(s) URL.
    std::string Resolve(std::string_view path_or_url) const;

    HttpClient& http_;
    AuthProvider& auth_;
    FhirClientOptions options_;
    std::string normal_base_;  // the base URL in normal form, for comparisons
};

}  // namespace microcare::adapter
