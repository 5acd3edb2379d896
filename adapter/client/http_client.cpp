#include "adapter/client/http_client.hpp"

#include <algorithm>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>
#include <cctype>
#include <string_view>
#include <utility>

#include "adapter/client/connection.hpp"
#include "adapter/client/connection_pool.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace urls = boost::urls;
using detail::Connection;
using detail::Endpoint;

Result<Endpoint> ParseEndpoint(const std::string& url) {
    auto parsed = urls::parse_absolute_uri(url);
    if (!parsed) return Error::kInvalidConfig;
    const urls::url_view& view = *parsed;
    Endpoint endpoint;
    std::uint16_t default_port = 0;
    if (view.scheme_id() == urls::scheme::https) {
        endpoint.tls = true;
        default_port = 443;
    } else if (view.scheme_id() == urls::scheme::http) {
        default_port = 80;
    } else {
        return Error::kInvalidConfig;
    }
    const auto host_type = view.host_type();
    if (host_type != urls::host_type::name && host_type != urls::host_type::ipv4 &&
        host_type != urls::host_type::ipv6) {
        return Error::kInvalidConfig;
    }
    endpoint.host = view.host_address();
    if (endpoint.host.empty()) return Error::kInvalidConfig;
    endpoint.port = default_port;
    if (view.has_port() && !view.port().empty()) {
        endpoint.port = view.port_number();
        if (endpoint.port == 0) return Error::kInvalidConfig;
    }
    endpoint.host_header = std::string(view.encoded_host_and_port());
    const std::string_view target = view.encoded_target();
    // "http://host?x" has an empty path; HTTP/1.1 wants the origin form "/?x".
    endpoint.target = target.starts_with('/') ? std::string(target) : "/" + std::string(target);
    return endpoint;
}

// A CR, LF or NUL in a header would let a value that came from a peer (a token, a link) write
// headers or a whole request of its own.
bool IsWellFormed(const HttpRequest& request) {
    auto is_tchar = [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    };
    auto is_token = [&](std::string_view text) {
        return !text.empty() && std::all_of(text.begin(), text.end(), is_tchar);
    };
    if (!is_token(request.method)) return false;
    for (const auto& [name, value] : request.headers) {
        if (!is_token(name) ||
            value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
            return false;
        }
    }
    return true;
}

// Replaying a request the server may already have acted on is only harmless for reads.
bool IsSafeToRetry(const std::string& method) { return method == "GET" || method == "HEAD"; }

}  // namespace

struct HttpClient::Impl {
    Impl(asio::any_io_executor executor_in, asio::ssl::context& tls_in,
         HttpClientOptions options_in)
        : executor(std::move(executor_in)),
          tls(tls_in),
          options(options_in),
          pool(options_in.max_idle_per_host) {}

    asio::any_io_executor executor;
    asio::ssl::context& tls;
    const HttpClientOptions options;
    detail::ConnectionPool pool;
};

HttpClient::HttpClient(asio::any_io_executor executor, asio::ssl::context& tls,
                       HttpClientOptions options)
    : impl_(std::make_unique<Impl>(std::move(executor), tls, options)) {}

HttpClient::~HttpClient() = default;

asio::awaitable<Result<HttpResponse>> HttpClient::Send(HttpRequest request) {
    if (!IsWellFormed(request)) co_return Error::kInvalidConfig;
    auto endpoint = ParseEndpoint(request.url);
    if (!endpoint) co_return endpoint.error();
    const std::string key = endpoint->PoolKey();

    for (int attempt = 0;; ++attempt) {
        // The retry always opens a fresh connection: a second stale one would fail the same way.
        std::unique_ptr<Connection> connection;
        if (attempt == 0) connection = impl_->pool.Acquire(key);
        const bool reused = connection != nullptr;
        if (!connection) {
            auto opened = co_await Connection::Open(impl_->executor, &impl_->tls, *endpoint,
                                                    impl_->options.connect_timeout);
            if (!opened) co_return opened.error();
            connection = std::move(*opened);
        }

        auto outcome = co_await connection->Exchange(request, *endpoint, impl_->options);
        if (outcome.reusable) {
            impl_->pool.Release(key, std::move(connection));
        }
        if (outcome.response) co_return std::move(outcome.response);

        // A pooled connection that turned out closed: the server dropped it as idle, maybe just
        // as the request went out. A read may be sent again; anything else only if not one
        // byte of it left, since the server may have acted on it before closing.
        const bool retry = attempt == 0 && reused && outcome.closed_by_peer &&
                           (IsSafeToRetry(request.method) || outcome.nothing_sent);
        if (!retry) co_return std::move(outcome.response);
    }
}

}  // namespace microcare::adapter
