#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapter/error.hpp"
#include "adapter/server/http_server_stats.hpp"
#include "adapter/service_config.hpp"

namespace boost::asio::ssl {
class context;
}

namespace microcare::adapter {

struct HttpRequestIn {
    std::string method;
    std::string target;  // path and query as sent
    std::string content_type;
    std::string authorization;
    std::string body;  // empty when the request is shown to the Admission check
    std::string request_id;
    // Mutual TLS: the verified client certificate's subject (RFC 2253); empty without one.
    std::string client_certificate;
    std::string origin;  // the Origin header (CORS), empty without one
};

struct HttpResponseOut {
    unsigned status = 200;
    std::string content_type = "application/fhir+json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

using RequestHandler = std::function<boost::asio::awaitable<HttpResponseOut>(HttpRequestIn)>;
// Decides on the request line and headers alone, before a byte of the body is read: the answer
// that refuses the request (sent at once, then the connection is closed), or nothing to let it
// go on. A client without credentials thus cannot make the server read, or hold, its body.
using Admission = std::function<std::optional<HttpResponseOut>(const HttpRequestIn& head)>;
// Answers requests refused before they reach the handler: malformed (400), too large (413,
// 431), too slow (408), an HTTP version other than 1.0 and 1.1 (505), no room or stopping (503).
using RefusalWriter = std::function<HttpResponseOut(unsigned status, const std::string& reason)>;

// Paths that connections taken beyond max_connections (the probes' reserve) may ask for.
inline constexpr std::string_view kProbePaths[] = {"/healthz", "/readyz"};

// HTTP/1.1 over Boost.Beast with C++20 coroutines: one coroutine per connection, keep-alive,
// optional TLS (with client-certificate verification for mutual TLS), limits on header size,
// body size, time and connections. Requests are decided on their headers (framing per RFC 9112,
// then the Admission check) before any body is read; every refusal is answered, then the
// connection closed. At max_connections the oldest connection that is idle or still sending its
// headers is closed to make room; when none is, a few more are taken for the probes only. Stop()
// stops accepting and closes connections waiting for a request; a request in progress gets its
// answer (with Connection: close) first.
class HttpServer {
public:
    HttpServer(boost::asio::io_context& io, const ServerSettings& settings,
               boost::asio::ssl::context* tls, RequestHandler handler, RefusalWriter refusal,
               Admission admission = {});
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds and listens; returns the port (useful when settings.port is 0).
    Result<unsigned short> Listen();
    void Start();
    void Stop();
    std::size_t open_connections() const;
    HttpServerStats stats() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace microcare::adapter
