#include "test_server.hpp"

#include <openssl/ssl.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <map>
#include <mutex>

namespace microcare::adapter::test_support {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);

std::string Lower(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower;
}

}  // namespace

std::optional<std::string> ReceivedRequest::Header(std::string_view name) const {
    const std::string lower = Lower(name);
    for (const auto& [key, value] : headers) {
        if (key == lower) return value;
    }
    return std::nullopt;
}

Reply Reply::Json(std::string body, unsigned status) {
    Reply reply;
    reply.status = status;
    reply.body = std::move(body);
    reply.headers = {{"Content-Type", "application/fhir+json"}};
    return reply;
}

Reply Reply::Do(Action action) {
    Reply reply;
    reply.action = action;
    return reply;
}

// Everything runs on one strand, so that Stop() from another thread and the sessions never
// touch the acceptor, the socket table or the counters at once.
struct TestServer::Impl : std::enable_shared_from_this<TestServer::Impl> {
    Impl(asio::io_context& io, Handler handler_in, ssl::context* tls_in)
        : strand(asio::make_strand(io)),
          acceptor(strand, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
          handler(std::move(handler_in)),
          tls(tls_in) {
        port = acceptor.local_endpoint().port();
    }

    asio::awaitable<void> Accept() {
        auto self = shared_from_this();
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(kUseTuple);
            if (ec || stopped) co_return;
            const std::size_t id = ++accepted;
            asio::co_spawn(strand, Session(std::move(socket), id), asio::detached);
        }
    }

    asio::awaitable<void> Session(tcp::socket socket, std::size_t id) {
        auto self = shared_from_this();
        error_code ignored;
        // Without it, Nagle and delayed ACKs add 40 ms to each TLS handshake.
        socket.set_option(tcp::no_delay(true), ignored);
        beast::tcp_stream stream(std::move(socket));
        if (stopped) co_return;
        open[id] = &stream;
        if (tls != nullptr) {
            ssl::stream<beast::tcp_stream&> secure(stream, *tls);
            auto [ec] = co_await secure.async_handshake(ssl::stream_base::server, kUseTuple);
            if (!ec) {
                const char* name =
                    SSL_get_servername(secure.native_handle(), TLSEXT_NAMETYPE_host_name);
                co_await Serve(secure, stream, id, name != nullptr ? name : "");
            }
        } else {
            co_await Serve(stream, stream, id, "");
        }
        open.erase(id);
        stream.socket().close(ignored);
        ++closed;
        WakeClosedWaiters();
    }

    template <typename Stream>
    asio::awaitable<void> Serve(Stream& stream, beast::tcp_stream& tcp, std::size_t id,
                                std::string sni) {
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(64 * 1024 * 1024);
            auto [ec, read] = co_await http::async_read(stream, buffer, parser, kUseTuple);
            (void)read;
            if (ec) co_return;
            auto& message = parser.get();

            ReceivedRequest request;
            request.connection = id;
            request.method = std::string(message.method_string());
            request.target = std::string(message.target());
            request.body = message.body();
            request.sni = sni;
            for (const auto& field : message) {
                request.headers.emplace_back(Lower(field.name_string()),
                                             std::string(field.value()));
            }
            {
                std::lock_guard lock(mutex);
                received.push_back(request);
            }
            const Reply reply = handler(request);

            switch (reply.action) {
                case Reply::Action::kStall: {
                    // Wait for the client to give up: its close ends this read.
                    char byte = 0;
                    co_await tcp.socket().async_read_some(asio::buffer(&byte, 1), kUseTuple);
                    co_return;
                }
                case Reply::Action::kReset: {
                    error_code ignored;
                    tcp.socket().set_option(asio::socket_base::linger(true, 0), ignored);
                    tcp.socket().close(ignored);
                    co_return;
                }
                case Reply::Action::kCloseWithoutReply:
                    co_return;
                case Reply::Action::kRaw:
                    co_await asio::async_write(stream, asio::buffer(reply.body), kUseTuple);
                    co_return;
                case Reply::Action::kRespond:
                case Reply::Action::kRespondThenClose:
                    break;
            }

            http::response<http::string_body> response{static_cast<http::status>(reply.status), 11};
            for (const auto& [name, value] : reply.headers) response.insert(name, value);
            response.body() = reply.body;
            const bool keep_alive = message.keep_alive() && !reply.connection_close;
            response.keep_alive(keep_alive);
            if (reply.chunked) {
                response.chunked(true);
            } else {
                response.prepare_payload();
            }
            auto [write_ec, written] = co_await http::async_write(stream, response, kUseTuple);
            (void)written;
            if (write_ec || !keep_alive || reply.action == Reply::Action::kRespondThenClose) {
                co_return;
            }
        }
    }

    void WakeClosedWaiters() {
        for (asio::steady_timer* waiter : closed_waiters) waiter->cancel();
    }

    asio::awaitable<void> WaitClosed(std::size_t count) {
        auto self = shared_from_this();
        while (closed < count) {
            asio::steady_timer timer(strand, asio::steady_timer::time_point::max());
            closed_waiters.push_back(&timer);
            co_await timer.async_wait(kUseTuple);
            std::erase(closed_waiters, &timer);
        }
    }

    void StopOnStrand() {
        stopped = true;
        error_code ignored;
        acceptor.close(ignored);
        for (auto& [id, stream] : open) stream->socket().close(ignored);
    }

    asio::strand<asio::io_context::executor_type> strand;
    tcp::acceptor acceptor;
    Handler handler;
    ssl::context* tls;
    std::uint16_t port = 0;
    bool stopped = false;
    std::atomic<std::size_t> accepted = 0;
    std::size_t closed = 0;
    std::map<std::size_t, beast::tcp_stream*> open;
    std::vector<asio::steady_timer*> closed_waiters;

    mutable std::mutex mutex;  // `received` is read from the test's thread
    std::vector<ReceivedRequest> received;
};

TestServer::TestServer(asio::io_context& io, Handler handler, ssl::context* tls)
    : impl_(std::make_shared<Impl>(io, std::move(handler), tls)) {
    asio::co_spawn(impl_->strand, impl_->Accept(), asio::detached);
}

TestServer::~TestServer() = default;

std::uint16_t TestServer::port() const { return impl_->port; }

std::string TestServer::Url(std::string_view path) const { return UrlWithHost("127.0.0.1", path); }

std::string TestServer::UrlWithHost(std::string_view host, std::string_view path) const {
    return std::string(impl_->tls != nullptr ? "https://" : "http://") + std::string(host) + ":" +
           std::to_string(impl_->port) + std::string(path);
}

void TestServer::Stop() {
    asio::dispatch(impl_->strand, [impl = impl_] { impl->StopOnStrand(); });
}

std::size_t TestServer::connections() const { return impl_->accepted; }

std::vector<ReceivedRequest> TestServer::requests() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->received;
}

std::size_t TestServer::request_count() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->received.size();
}

asio::awaitable<void> TestServer::WaitForClosedConnections(std::size_t count) {
    co_await asio::co_spawn(impl_->strand, impl_->WaitClosed(count), asio::use_awaitable);
}

}  // namespace microcare::adapter::test_support
