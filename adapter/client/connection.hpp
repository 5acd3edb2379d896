#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "adapter/client/http_client.hpp"
#include "adapter/error.hpp"

namespace boost::asio::ssl {
class context;
}

namespace microcare::adapter::detail {

// Where a request goes, taken apart from its URL once.
struct Endpoint {
    bool tls = false;
    std::string host;  // a name or an IP address, without IPv6 brackets: resolved and verified
    std::uint16_t port = 0;
    std::string host_header;  // as the URL spells it, brackets and port included when present
    std::string target;       // path and query, never empty

    // Connections are pooled by scheme, host and port.
    std::string PoolKey() const;
};

// What one request/response exchange on a connection came to.
struct ExchangeOutcome {
    Result<HttpResponse> response{Error::kConnectionFailed};
    // The response was read to its end and both sides allow keep-alive: back to the pool.
    bool reusable = false;
    // The connection failed as one the server closed while it sat idle fails (EOF or reset
    // before any byte of a response): the request may never have reached the server.
    bool closed_by_peer = false;
    // Not one byte of the request went out.
    bool nothing_sent = false;
};

// One HTTP/1.1 connection, plain or TLS, owned by exactly one request at a time. All of its I/O
// runs on a strand of its own, so that a multi-threaded io_context cannot run the deadline's
// cancellation and the socket's completion at once. Beast stays in connection.cpp.
class Connection {
public:
    Connection(boost::asio::any_io_executor executor, boost::asio::ssl::context* tls);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    // Resolves, connects and (for https) handshakes with SNI and host name verification, all
    // within `timeout`. Errors: kTimeout, kConnectionFailed, kTlsFailed.
    static boost::asio::awaitable<Result<std::unique_ptr<Connection>>> Open(
        boost::asio::any_io_executor executor, boost::asio::ssl::context* tls,
        const Endpoint& endpoint, std::chrono::milliseconds timeout);

    // Writes the request and reads the whole response within options.request_timeout.
    boost::asio::awaitable<ExchangeOutcome> Exchange(const HttpRequest& request,
                                                     const Endpoint& endpoint,
                                                     const HttpClientOptions& options);

    // False when an idle connection has been closed by the server or holds bytes nobody asked
    // for; such a connection is not worth a request. Never blocks.
    bool LooksReusable() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace microcare::adapter::detail
