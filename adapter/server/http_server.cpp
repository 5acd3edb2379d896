#include "adapter/server/http_server.hpp"

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <mutex>
#include <set>

#include "adapter/log.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::use_awaitable;

std::string NextRequestId() {
    static std::atomic<std::uint64_t> counter{0};
    static const std::uint64_t start =
        static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%08llx-%06llx",
                  static_cast<unsigned long long>(start & 0xffffffffULL),
                  static_cast<unsigned long long>(++counter));
    return buffer;
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
    Impl(asio::io_context& io_context, const ServerSettings& server_settings,
         asio::ssl::context* ctx, RequestHandler request_handler, RefusalWriter refusal_writer)
        : io(io_context),
          settings(server_settings),
          tls(ctx),
          handler(std::move(request_handler)),
          refusal(std::move(refusal_writer)),
          acceptor(asio::make_strand(io_context)) {}

    asio::io_context& io;
    ServerSettings settings;
    asio::ssl::context* tls;
    RequestHandler handler;
    RefusalWriter refusal;
    tcp::acceptor acceptor;
    std::atomic<bool> stopping{false};
    // A connection, as Stop() sees it. `reading` is only touched on the connection's strand.
    struct Connection {
        beast::tcp_stream* stream = nullptr;
        bool reading = false;
    };
    mutable std::mutex mutex;
    std::set<Connection*> connections;

    void Track(Connection* connection) {
        std::lock_guard lock(mutex);
        connections.insert(connection);
    }
    void Untrack(Connection* connection) {
        std::lock_guard lock(mutex);
        connections.erase(connection);
    }

    template <typename Body>
    static void Fill(bhttp::response<Body>& res, const HttpResponseOut& out, bool keep_alive,
                     const std::string& request_id) {
        res.result(out.status);
        res.set(bhttp::field::server, "MicroCare");
        res.set(bhttp::field::content_type, out.content_type);
        res.set("X-Request-Id", request_id);
        for (const auto& [name, value] : out.headers) res.set(name, value);
        res.keep_alive(keep_alive);
        res.body() = out.body;
        res.prepare_payload();
    }

    template <typename Stream>
    asio::awaitable<void> WriteRefusal(Stream& stream, unsigned status, const std::string& reason) {
        HttpResponseOut out = refusal(status, reason);
        bhttp::response<bhttp::string_body> res;
        Fill(res, out, false, NextRequestId());
        beast::get_lowest_layer(stream).expires_after(settings.request_timeout);
        co_await bhttp::async_write(stream, res, asio::as_tuple(use_awaitable));
    }

    template <typename Stream>
    asio::awaitable<void> Serve(Stream& stream, Connection& connection, bool client_verified) {
        beast::flat_buffer buffer;
        while (!stopping) {
            bhttp::request_parser<bhttp::string_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(settings.max_header_bytes));
            parser.body_limit(settings.max_body_bytes);
            beast::get_lowest_layer(stream).expires_after(settings.request_timeout);
            connection.reading = true;
            auto [ec, bytes] =
                co_await bhttp::async_read(stream, buffer, parser, asio::as_tuple(use_awaitable));
            connection.reading = false;
            (void)bytes;
            if (ec == bhttp::error::body_limit) {
                co_await WriteRefusal(stream, 413,
                                      "the request body exceeds the limit of " +
                                          std::to_string(settings.max_body_bytes) + " bytes");
                co_return;
            }
            if (ec == bhttp::error::header_limit) {
                co_await WriteRefusal(stream, 431, "the request headers are too large");
                co_return;
            }
            if (ec == beast::error::timeout && buffer.size() > 0) {
                co_await WriteRefusal(stream, 408, "the request was not received in time");
                co_return;
            }
            if (ec) co_return;  // closed by the peer, timed out idle, or not HTTP at all

            auto& req = parser.get();
            HttpRequestIn in;
            in.method = std::string(req.method_string());
            in.target = std::string(req.target());
            in.content_type = std::string(req[bhttp::field::content_type]);
            in.authorization = std::string(req[bhttp::field::authorization]);
            in.body = std::move(req.body());
            in.request_id = NextRequestId();
            in.client_certificate_verified = client_verified;
            const std::string request_id = in.request_id;
            const bool keep_alive = req.keep_alive();

            HttpResponseOut out = co_await handler(std::move(in));
            bhttp::response<bhttp::string_body> res;
            Fill(res, out, keep_alive && !stopping, request_id);
            beast::get_lowest_layer(stream).expires_after(settings.request_timeout);
            auto [write_ec, written] =
                co_await bhttp::async_write(stream, res, asio::as_tuple(use_awaitable));
            (void)written;
            if (write_ec || !res.keep_alive()) co_return;
        }
    }

    asio::awaitable<void> Session(tcp::socket socket) {
        auto self = shared_from_this();
        beast::tcp_stream stream(std::move(socket));
        Connection connection{&stream, false};
        Track(&connection);
        struct Untracker {
            Impl& impl;
            Connection* connection;
            ~Untracker() { impl.Untrack(connection); }
        } untrack{*this, &connection};

        if (tls == nullptr) {
            co_await Serve(stream, connection, false);
            beast::error_code ignored;
            stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
            co_return;
        }
        beast::ssl_stream<beast::tcp_stream&> secure(stream, *tls);
        stream.expires_after(settings.request_timeout);
        auto [ec] = co_await secure.async_handshake(asio::ssl::stream_base::server,
                                                    asio::as_tuple(use_awaitable));
        if (ec) {
            Log::Warning("TLS handshake refused", {{"error", ec.message()}});
            co_return;
        }
        const bool verified = SSL_get0_peer_certificate(secure.native_handle()) != nullptr &&
                              SSL_get_verify_result(secure.native_handle()) == X509_V_OK;
        co_await Serve(secure, connection, verified);
        stream.expires_after(std::chrono::seconds(5));
        co_await secure.async_shutdown(asio::as_tuple(use_awaitable));
    }

    asio::awaitable<void> Accept() {
        auto self = shared_from_this();
        while (!stopping) {
            auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io),
                                                               asio::as_tuple(use_awaitable));
            if (ec) {
                if (stopping || ec == asio::error::operation_aborted) co_return;
                Log::Warning("accept failed", {{"error", ec.message()}});
                continue;
            }
            asio::co_spawn(socket.get_executor(), Session(std::move(socket)), asio::detached);
        }
    }
};

HttpServer::HttpServer(asio::io_context& io, const ServerSettings& settings,
                       asio::ssl::context* tls, RequestHandler handler, RefusalWriter refusal)
    : impl_(std::make_shared<Impl>(io, settings, tls, std::move(handler), std::move(refusal))) {}

HttpServer::~HttpServer() { Stop(); }

Result<unsigned short> HttpServer::Listen() {
    beast::error_code ec;
    auto address = asio::ip::make_address(impl_->settings.listen, ec);
    if (ec) return Error::kInvalidConfig;
    tcp::endpoint endpoint(address, impl_->settings.port);
    auto& acceptor = impl_->acceptor;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        Log::Error("cannot listen", {{"address", impl_->settings.listen}, {"error", ec.message()}});
        return Error::kConnectionFailed;
    }
    return acceptor.local_endpoint().port();
}

void HttpServer::Start() {
    asio::co_spawn(impl_->acceptor.get_executor(), impl_->Accept(), asio::detached);
}

void HttpServer::Stop() {
    if (impl_->stopping.exchange(true)) return;
    asio::post(impl_->acceptor.get_executor(), [impl = impl_] {
        beast::error_code ignored;
        impl->acceptor.close(ignored);
    });
    // Idle keep-alive connections are waiting in a read: cancelling it ends their sessions. A
    // session in the middle of a request finishes it and then sees `stopping`.
    std::lock_guard lock(impl_->mutex);
    for (Impl::Connection* connection : impl_->connections) {
        asio::post(connection->stream->get_executor(), [connection, impl = impl_] {
            std::lock_guard inner(impl->mutex);
            if (impl->connections.count(connection) && connection->reading) {
                connection->stream->cancel();
            }
        });
    }
}

std::size_t HttpServer::open_connections() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->connections.size();
}

}  // namespace microcare::adapter
