#pragma once

// An HTTP/1.1 server for the client's tests, plain or TLS, on 127.0.0.1 and a port the kernel
// picks. It answers each request as a script says, and can misbehave on demand: close, stall,
// reset, send garbage or too much. Beast stays in test_server.cpp.

#include <gtest/gtest.h>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace microcare::adapter::test_support {

struct ReceivedRequest {
    std::size_t connection = 0;  // 1 for the first connection accepted, and so on
    std::string method;
    std::string target;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
    std::string sni;  // the TLS server name the client sent, if any

    std::optional<std::string> Header(std::string_view name) const;
};

struct Reply {
    enum class Action {
        kRespond,            // answer, keep the connection if both sides allow it
        kRespondThenClose,   // answer without "Connection: close", then close (idle timeout)
        kCloseWithoutReply,  // read the request, then close: it meets a server going away
        kStall,              // read the request and never answer
        kReset,              // read the request, then reset the connection (RST)
        kRaw,                // write `body` as raw bytes, then close
    };
    Action action = Action::kRespond;
    unsigned status = 200;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    bool connection_close = false;  // send "Connection: close"
    bool chunked = false;

    static Reply Json(std::string body, unsigned status = 200);
    static Reply Do(Action action);
};

using Handler = std::function<Reply(const ReceivedRequest&)>;

class TestServer {
public:
    // `tls` set: every connection is a TLS server connection with that context.
    TestServer(boost::asio::io_context& io, Handler handler,
               boost::asio::ssl::context* tls = nullptr);
    ~TestServer();
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;

    std::uint16_t port() const;
    // "http://127.0.0.1:<port><path>" (https for TLS).
    std::string Url(std::string_view path = "/") const;
    // "http://localhost:<port><path>".
    std::string UrlWithHost(std::string_view host, std::string_view path = "/") const;

    // Stops accepting and closes every connection; safe from any thread, idempotent.
    void Stop();

    std::size_t connections() const;
    std::vector<ReceivedRequest> requests() const;
    std::size_t request_count() const;

    // Completes once at least `count` connections have been closed on the server's side.
    boost::asio::awaitable<void> WaitForClosedConnections(std::size_t count);

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

// Runs `body` on `io` to its end, then stops the servers and lets everything wind down. A
// watchdog turns a hang (a bug) into a test failure instead of a stuck test run.
template <typename T>
T RunToEnd(boost::asio::io_context& io, std::initializer_list<TestServer*> servers,
           boost::asio::awaitable<T> body) {
    std::optional<T> result;
    std::exception_ptr error;
    bool finished = false;
    std::vector<TestServer*> to_stop(servers);
    boost::asio::co_spawn(io, std::move(body), [&](std::exception_ptr e, T value) {
        finished = true;
        error = e;
        if (!e) result.emplace(std::move(value));
        for (TestServer* server : to_stop) server->Stop();
    });
    io.run_for(std::chrono::seconds(60));
    if (!finished) {
        for (TestServer* server : to_stop) server->Stop();
        io.stop();
        ADD_FAILURE() << "the test body did not finish";
        throw std::runtime_error("hung");
    }
    io.restart();
    if (error) std::rethrow_exception(error);
    return std::move(*result);
}

}  // namespace microcare::adapter::test_support
