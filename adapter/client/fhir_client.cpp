#include "adapter/client/fhir_client.hpp"

#include <set>
#include <utility>

#include "adapter/client/outbound_url.hpp"
#include "adapter/client/search_page.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;

constexpr std::string_view kFhirJson = "application/fhir+json";

bool IsSuccess(const HttpResponse& response) { return response.status / 100 == 2; }

}  // namespace

FhirClient::FhirClient(HttpClient& http, AuthProvider& auth, FhirClientOptions options)
    : http_(http), auth_(auth), options_(std::move(options)) {
    while (!options_.base_url.empty() && options_.base_url.back() == '/') {
        options_.base_url.pop_back();
    }
    normal_base_ = NormalHttpUrl(options_.base_url).value_or(options_.base_url);
}

std::string FhirClient::Resolve(std::string_view path_or_url) const {
    return ResolveAgainstBase(options_.base_url, path_or_url);
}

asio::awaitable<Result<HttpResponse>> FhirClient::Get(std::string path_or_url) {
    HttpRequest request;
    request.method = "GET";
    request.url = Resolve(path_or_url);
    request.headers = {{"Accept", std::string(kFhirJson)}};
    co_return co_await Send(std::move(request));
}

asio::awaitable<Result<HttpResponse>> FhirClient::Post(std::string path, std::string body) {
    HttpRequest request;
    request.method = "POST";
    request.url = Resolve(path);
    request.headers = {{"Accept", std::string(kFhirJson)},
                       {"Content-Type", std::string(kFhirJson)}};
    request.body = std::move(body);
    co_return co_await Send(std::move(request));
}

asio::awaitable<Result<HttpResponse>> FhirClient::Send(HttpRequest request) {
    // What goes out is the URL in normal form, so that what was checked is what the server
    // reads: `[base]/../admin` is `/admin`, and gets no credentials.
    auto url = NormalHttpUrl(request.url);
    if (!url) co_return Error::kRefusedUrl;
    request.url = std::move(*url);
    // The EHR's credentials are for its FHIR API: a URL outside the base goes out without them.
    const bool authorise = IsAtOrBelow(request.url, normal_base_);
    for (int attempt = 0;; ++attempt) {
        HttpRequest attempt_request = request;
        bool sent_credentials = false;
        if (authorise) {
            auto header = co_await auth_.AuthorizationHeader();
            if (!header) co_return header.error();
            if (!header->empty()) {
                attempt_request.headers.emplace_back("Authorization", std::move(*header));
                sent_credentials = true;
            }
        }
        auto response = co_await http_.Send(std::move(attempt_request));
        if (!response) co_return response;
        // A 401 usually means the server stopped honouring a cached token before its stated
        // expiry (revoked, server restarted): one fresh token is worth a try, a loop is not.
        if (response->status == 401 && sent_credentials && attempt == 0) {
            auth_.Invalidate();
            continue;
        }
        co_return response;
    }
}

asio::awaitable<Result<SearchResult>> FhirClient::SearchAll(std::string query) {
    SearchResult result;
    std::set<std::string> seen;
    std::string url = Resolve(query);
    for (;;) {
        if (!seen.insert(url).second) co_return Error::kBadResponse;
        auto response = co_await Get(url);
        if (!response) co_return response.error();
        if (!IsSuccess(*response)) {
            result.failure = std::move(*response);
            co_return result;
        }
        ++result.page_count;
        auto page = ParseSearchPage(response->body, options_.base_url);
        if (!page) co_return page.error();
        result.resources.insert(result.resources.end(), page->resources.begin(),
                                page->resources.end());
        // Kept whole: the resources view into it.
        result.pages.push_back(std::move(page->document));
        if (page->next.empty()) co_return result;
        if (result.page_count >= options_.max_pages) co_return Error::kResponseTooLarge;
        url = std::move(page->next);
    }
}

}  // namespace microcare::adapter
