#include "adapter/client/fhir_client.hpp"

#include <boost/url/parse.hpp>
#include <cctype>
#include <set>
#include <utility>

#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace urls = boost::urls;

constexpr std::string_view kFhirJson = "application/fhir+json";

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
    if (text.size() < prefix.size()) return false;
    for (std::size_t i = 0; i < prefix.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
    }
    return true;
}

bool IsAbsolute(std::string_view path_or_url) {
    return StartsWithIgnoreCase(path_or_url, "http://") ||
           StartsWithIgnoreCase(path_or_url, "https://");
}

struct Origin {
    urls::scheme scheme = urls::scheme::none;
    std::string host;
    std::uint16_t port = 0;
    bool operator==(const Origin&) const = default;
};

std::optional<Origin> OriginOf(std::string_view url) {
    auto parsed = urls::parse_absolute_uri(url);
    if (!parsed) return std::nullopt;
    Origin origin;
    origin.scheme = parsed->scheme_id();
    origin.host = parsed->host_address();
    for (char& c : origin.host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (parsed->has_port() && !parsed->port().empty()) {
        origin.port = parsed->port_number();
    } else if (origin.scheme == urls::scheme::https) {
        origin.port = 443;
    } else if (origin.scheme == urls::scheme::http) {
        origin.port = 80;
    }
    return origin;
}

bool SameOrigin(std::string_view a, std::string_view b) {
    auto origin_a = OriginOf(a);
    auto origin_b = OriginOf(b);
    return origin_a && origin_b && *origin_a == *origin_b;
}

bool IsSuccess(const HttpResponse& response) { return response.status / 100 == 2; }

}  // namespace

FhirClient::FhirClient(HttpClient& http, AuthProvider& auth, FhirClientOptions options)
    : http_(http), auth_(auth), options_(std::move(options)) {
    while (!options_.base_url.empty() && options_.base_url.back() == '/') {
        options_.base_url.pop_back();
    }
}

std::string FhirClient::Resolve(std::string_view path_or_url) const {
    if (IsAbsolute(path_or_url)) return std::string(path_or_url);
    while (!path_or_url.empty() && path_or_url.front() == '/') path_or_url.remove_prefix(1);
    std::string url = options_.base_url;
    url += '/';
    url += path_or_url;
    return url;
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
    // The EHR's token is for the EHR: an absolute URL elsewhere goes out without it.
    const bool authorise = SameOrigin(request.url, options_.base_url);
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

asio::awaitable<Result<FhirClient::SearchResult>> FhirClient::SearchAll(std::string query) {
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
        ++result.pages;

        fhir::IssueList issues;
        auto document = fhir::JsonDocument::Parse(response->body, issues);
        if (!document) co_return Error::kBadResponse;
        const fhir::Node bundle = document->Root();
        if (bundle["resourceType"].String() != "Bundle") co_return Error::kBadResponse;
        const fhir::Node entries = bundle["entry"];
        if (entries.Exists() && !entries.IsArray()) co_return Error::kBadResponse;
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            const fhir::Node resource = entries[i]["resource"];
            if (resource.IsObject()) result.resources.push_back(fhir::Serialize(resource));
        }

        std::string next;
        const fhir::Node links = bundle["link"];
        for (std::size_t i = 0; i < links.Size(); ++i) {
            if (links[i]["relation"].String() == "next" && links[i]["url"].IsString()) {
                next = std::string(links[i]["url"].String());
                break;
            }
        }
        if (next.empty()) co_return result;
        if (result.pages >= options_.max_pages) co_return Error::kResponseTooLarge;
        url = Resolve(next);
        if (!SameOrigin(url, options_.base_url)) co_return Error::kBadResponse;
    }
}

}  // namespace microcare::adapter
