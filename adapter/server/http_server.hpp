#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "adapter/error.hpp"
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
    std::string body;
    std::string request_id;
    bool client_certificate_verified = false;  // mutual TLS
};

struct HttpResponseOut {
    unsigned status = 200;
    std::string content_type = "application/fhir+json";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

using RequestHandler = std::function<boost::asio::awaitable<HttpResponseOut>(HttpRequestIn)>;
// Answers requests refused before they reach the handler (too large, timed out).
using RefusalWriter = std::function<HttpResponseOut(unsigned status, const std::string& reason)>;

// HTTP/1.1 over Boost.Beast with C++20 coroutines: one coroutine per connection, keep-alive,
// optional TLS (with client-certificate verification for mutual TLS), limits on header size,
// body size and time. Stop() stops accepting and closes idle connections; a request in
// progress gets its answer (with Connection: close) first.
class HttpServer {
public:
    HttpServer(boost::asio::io_context& io, const ServerSettings& settings,
               boost::asio::ssl::context* tls, RequestHandler handler, RefusalWriter refusal);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;

    // Binds and listens; returns the port (useful when settings.port is 0).
    Result<unsigned short> Listen();
    void Start();
    void Stop();
    std::size_t open_connections() const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace microcare::adapter
