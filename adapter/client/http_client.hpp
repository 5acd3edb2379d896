#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "adapter/error.hpp"

namespace boost::asio::ssl {
class context;
}

namespace microcare::adapter {

struct HttpResponse {
    unsigned status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-case

    // The first header of that (lower-case) name, if any.
    std::optional<std::string> Header(std::string_view name) const;
    // Retry-After as a delay (delta-seconds or HTTP-date), if present and sensible.
    std::optional<std::chrono::milliseconds> RetryAfter(
        std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) const;
    // The Date header: the server's clock when it answered (to the second).
    std::optional<std::chrono::system_clock::time_point> Date() const;
};

// An HTTP-date (IMF-fixdate, "Sun, 06 Nov 1994 08:49:37 GMT"), or nullopt.
std::optional<std::chrono::system_clock::time_point> ParseHttpDate(const std::string& text);

struct HttpRequest {
    std::string method = "GET";
    std::string url;  // absolute: http(s)://host[:port]/path?query
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

struct HttpClientOptions {
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds request_timeout{30000};  // whole exchange, after connecting
    std::size_t max_response_bytes = 64 * 1024 * 1024;
    std::size_t max_idle_per_host = 8;  // keep-alive connections kept for reuse
};

// HTTP/1.1 over Boost.Beast, plain or TLS, with a keep-alive connection pool per
// scheme/host/port. TLS verifies the peer's certificate chain and host name and sets SNI (the
// ssl::context supplies the trust store: system CAs or a configured CA file, and optionally a
// client certificate for mutual TLS). Every connect, handshake, write and read has a
// deadline. A connection that failed or timed out is never reused. Thread-safe: requests may
// run concurrently from coroutines on any executor.
class HttpClient {
public:
    HttpClient(boost::asio::any_io_executor executor, boost::asio::ssl::context& tls,
               HttpClientOptions options = {});
    ~HttpClient();
    HttpClient(const HttpClient&) = delete;
    HttpClient& operator=(const HttpClient&) = delete;

    // Statuses (4xx, 5xx) are responses, not errors. Errors: Error::kTimeout,
    // kConnectionFailed, kTlsFailed, kResponseTooLarge, kBadResponse.
    boost::asio::awaitable<Result<HttpResponse>> Send(HttpRequest request);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace microcare::adapter
