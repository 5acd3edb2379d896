#include "adapter/client/connection.hpp"

#include <openssl/ssl.h>
#include <sys/socket.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cctype>
#include <cerrno>
#include <optional>

namespace microcare::adapter::detail {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using SteadyTime = std::chrono::steady_clock::time_point;

constexpr auto kUseTuple = asio::as_tuple(asio::use_awaitable);
// Beast's 8 KB default refuses the long Link and Set-Cookie headers some EHRs send.
constexpr std::uint32_t kHeaderLimit = 64 * 1024;
// 1xx interim responses skipped before the final one; more than this is not HTTP we trust.
constexpr int kMaxInterimResponses = 8;

bool IsTimeout(const error_code& ec) { return ec == beast::error::timeout; }

bool IsHttpParseError(const error_code& ec) {
    return ec.category() == make_error_code(http::error::bad_version).category();
}

// How a keep-alive connection the server has already dropped fails.
bool IsClosedByPeer(const error_code& ec) {
    return ec == http::error::end_of_stream || ec == asio::error::eof ||
           ec == asio::error::connection_reset || ec == asio::error::connection_aborted ||
           ec == asio::error::broken_pipe || ec == ssl::error::stream_truncated;
}

Error ExchangeError(const error_code& ec) {
    if (IsTimeout(ec)) return Error::kTimeout;
    if (ec == http::error::body_limit) return Error::kResponseTooLarge;
    if (ec != http::error::end_of_stream && IsHttpParseError(ec)) return Error::kBadResponse;
    return Error::kConnectionFailed;
}

std::string Lower(std::string_view text) {
    std::string lower(text);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower;
}

// The resolver cannot be cancelled once getaddrinfo runs, so it runs in a coroutine of its own
// and the connect deadline only waits for it to signal. A late answer lands here and is dropped.
struct ResolveState {
    ResolveState(const asio::any_io_executor& executor, SteadyTime deadline)
        : signal(executor, deadline) {}
    asio::steady_timer signal;
    error_code ec;
    tcp::resolver::results_type results;
    bool done = false;
};

asio::awaitable<void> ResolveInto(std::shared_ptr<ResolveState> state, std::string host,
                                  std::string port, tcp::resolver::flags flags) {
    tcp::resolver resolver(co_await asio::this_coro::executor);
    auto [ec, results] = co_await resolver.async_resolve(host, port, flags, kUseTuple);
    state->ec = ec;
    state->results = std::move(results);
    state->done = true;
    state->signal.cancel();
}

http::request<http::string_body> BuildRequest(const HttpRequest& request,
                                              const Endpoint& endpoint) {
    http::request<http::string_body> req;
    const http::verb verb = http::string_to_verb(request.method);
    if (verb == http::verb::unknown) {
        req.method_string(request.method);
    } else {
        req.method(verb);
    }
    req.target(endpoint.target);
    req.version(11);
    for (const auto& [name, value] : request.headers) req.insert(name, value);
    if (req.count(http::field::host) == 0) req.set(http::field::host, endpoint.host_header);
    if (req.count(http::field::user_agent) == 0) req.set(http::field::user_agent, "MicroCare");
    req.body() = request.body;
    req.prepare_payload();
    return req;
}

HttpResponse ToResponse(http::response<http::string_body>& message) {
    HttpResponse response;
    response.status = message.result_int();
    for (const auto& field : message) {
        response.headers.emplace_back(Lower(field.name_string()), std::string(field.value()));
    }
    response.body = std::move(message.body());
    return response;
}

template <typename Stream>
asio::awaitable<ExchangeOutcome> ExchangeOn(Stream& stream, beast::tcp_stream& tcp,
                                            beast::flat_buffer& buffer, const HttpRequest& request,
                                            const Endpoint& endpoint,
                                            const HttpClientOptions& options) {
    ExchangeOutcome outcome;
    auto req = BuildRequest(request, endpoint);

    // One deadline for the whole exchange: a server that trickles bytes cannot extend it.
    tcp.expires_after(options.request_timeout);
    auto [write_ec, written] = co_await http::async_write(stream, req, kUseTuple);
    if (write_ec) {
        outcome.response = ExchangeError(write_ec);
        outcome.closed_by_peer = IsClosedByPeer(write_ec);
        outcome.nothing_sent = written == 0;
        co_return outcome;
    }

    for (int interim = 0;; ++interim) {
        http::response_parser<http::string_body> parser;
        parser.body_limit(options.max_response_bytes);
        parser.header_limit(kHeaderLimit);
        if (req.method() == http::verb::head) parser.skip(true);
        auto [read_ec, read] = co_await http::async_read(stream, buffer, parser, kUseTuple);
        (void)read;
        if (read_ec) {
            outcome.response = ExchangeError(read_ec);
            outcome.closed_by_peer = interim == 0 && !parser.got_some() && IsClosedByPeer(read_ec);
            co_return outcome;
        }
        auto& message = parser.get();
        const unsigned status = message.result_int();
        if (status >= 100 && status < 200 && status != 101) {
            if (interim < kMaxInterimResponses) continue;
            outcome.response = Error::kBadResponse;
            co_return outcome;
        }
        outcome.reusable = message.keep_alive() && req.keep_alive() && !parser.need_eof();
        outcome.response = ToResponse(message);
        tcp.expires_never();
        co_return outcome;
    }
}

}  // namespace

std::string Endpoint::PoolKey() const {
    return (tls ? "https://" : "http://") + Lower(host) + ":" + std::to_string(port);
}

struct Connection::Impl {
    Impl(asio::any_io_executor executor, ssl::context* tls)
        : strand(asio::make_strand(std::move(executor))) {
        if (tls != nullptr) {
            secure.emplace(strand, *tls);
        } else {
            plain.emplace(strand);
        }
    }

    beast::tcp_stream& Tcp() { return secure ? secure->next_layer() : *plain; }

    asio::awaitable<Result<void>> Open(const Endpoint& endpoint, SteadyTime deadline) {
        error_code not_ip;
        asio::ip::make_address(endpoint.host, not_ip);
        const bool is_ip = !not_ip;
        auto flags = tcp::resolver::numeric_service;
        if (is_ip) flags = flags | tcp::resolver::numeric_host;

        auto state = std::make_shared<ResolveState>(strand, deadline);
        asio::co_spawn(strand,
                       ResolveInto(state, endpoint.host, std::to_string(endpoint.port), flags),
                       asio::detached);
        co_await state->signal.async_wait(kUseTuple);
        if (!state->done) co_return Error::kTimeout;
        if (state->ec) co_return Error::kConnectionFailed;

        Tcp().expires_at(deadline);
        auto [connect_ec, connected] = co_await Tcp().async_connect(state->results, kUseTuple);
        (void)connected;
        if (connect_ec) {
            co_return IsTimeout(connect_ec) ? Error::kTimeout : Error::kConnectionFailed;
        }
        error_code ignored;
        Tcp().socket().set_option(tcp::no_delay(true), ignored);

        if (secure) {
            // SNI carries names only (RFC 6066); an IP literal is checked against the
            // certificate's IP SANs by host_name_verification instead.
            if (!is_ip &&
                SSL_set_tlsext_host_name(secure->native_handle(), endpoint.host.c_str()) != 1) {
                co_return Error::kTlsFailed;
            }
            secure->set_verify_callback(ssl::host_name_verification(endpoint.host));
            auto [handshake_ec] =
                co_await secure->async_handshake(ssl::stream_base::client, kUseTuple);
            if (handshake_ec) {
                co_return IsTimeout(handshake_ec) ? Error::kTimeout : Error::kTlsFailed;
            }
        }
        Tcp().expires_never();
        co_return Result<void>{};
    }

    asio::awaitable<ExchangeOutcome> Exchange(const HttpRequest& request, const Endpoint& endpoint,
                                              const HttpClientOptions& options) {
        if (secure) {
            co_return co_await ExchangeOn(*secure, Tcp(), buffer, request, endpoint, options);
        }
        co_return co_await ExchangeOn(*plain, Tcp(), buffer, request, endpoint, options);
    }

    asio::strand<asio::any_io_executor> strand;
    std::optional<beast::tcp_stream> plain;
    std::optional<ssl::stream<beast::tcp_stream>> secure;
    beast::flat_buffer buffer;
};

Connection::Connection(asio::any_io_executor executor, ssl::context* tls)
    : impl_(std::make_unique<Impl>(std::move(executor), tls)) {}

Connection::~Connection() = default;

asio::awaitable<Result<std::unique_ptr<Connection>>> Connection::Open(
    asio::any_io_executor executor, ssl::context* tls, const Endpoint& endpoint,
    std::chrono::milliseconds timeout) {
    auto connection =
        std::make_unique<Connection>(std::move(executor), endpoint.tls ? tls : nullptr);
    const SteadyTime deadline = std::chrono::steady_clock::now() + timeout;
    Impl& impl = *connection->impl_;
    auto opened =
        co_await asio::co_spawn(impl.strand, impl.Open(endpoint, deadline), asio::use_awaitable);
    if (!opened) co_return opened.error();
    co_return std::move(connection);
}

asio::awaitable<ExchangeOutcome> Connection::Exchange(const HttpRequest& request,
                                                      const Endpoint& endpoint,
                                                      const HttpClientOptions& options) {
    co_return co_await asio::co_spawn(impl_->strand, impl_->Exchange(request, endpoint, options),
                                      asio::use_awaitable);
}

bool Connection::LooksReusable() const {
    if (impl_->buffer.size() != 0) return false;
    if (impl_->secure && SSL_pending(impl_->secure->native_handle()) > 0) return false;
    auto& socket = impl_->Tcp().socket();
    if (!socket.is_open()) return false;
    // An idle HTTP/1.1 connection has nothing to read: 0 is the server's FIN, anything else
    // is a byte nobody asked for. Peeking leaves the socket as it was.
    char byte = 0;
    const auto received = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace microcare::adapter::detail
