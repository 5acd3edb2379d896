#include "adapter/server/http_server.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <mutex>
#include <set>

#include "adapter/log.hpp"
#include "adapter/server/flood_sampler.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using asio::use_awaitable;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Who the client is, when its certificate was verified: the subject, as an audit record names
// the caller (an EHR system's identity, not a person's). Empty: no certificate, or not verified.
std::string VerifiedSubject(SSL* ssl) {
    X509* certificate = SSL_get0_peer_certificate(ssl);
    if (certificate == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return {};
    std::string subject = "(no subject)";
    BIO* out = BIO_new(BIO_s_mem());
    if (out != nullptr &&
        X509_NAME_print_ex(out, X509_get_subject_name(certificate), 0, XN_FLAG_RFC2253) > 0) {
        char* data = nullptr;
        const long size = BIO_get_mem_data(out, &data);
        if (size > 0) subject.assign(data, static_cast<std::size_t>(size));
    }
    BIO_free(out);
    return subject;
}

// Connections taken beyond max_connections when none can be closed to make room (all are busy
// with admitted requests): enough for the probes, each of which gets one answer.
constexpr std::size_t kProbeReserve = 8;
// How often a cut read is cancelled again until its session notices (see RepeatCancel).
constexpr std::chrono::milliseconds kCancelRepeat{50};
// accept() failing for want of descriptors or memory fails again at once: wait, longer each
// time, so one core does not spin (and the log does not fill) until something is closed.
constexpr std::chrono::milliseconds kAcceptBackoffFirst{50};
constexpr std::chrono::milliseconds kAcceptBackoffMax{500};
// After a refusal sent before the body was read the client may still be sending: reading (and
// dropping) a little of it before closing keeps the kernel from answering with a reset that
// could destroy the refusal on its way. Bounded in bytes and time, never more.
constexpr std::size_t kLingerBytes = 256 * 1024;
constexpr std::chrono::milliseconds kLingerTime{2000};

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

// A warning that may come in floods (a failing accept(), handshakes from a scanner): at most one
// line a second, with how many were held back since the last.
class RateLimitedWarning {
public:
    explicit RateLimitedWarning(std::string_view message) : message_(message) {}

    // True when this one was written.
    bool Write(std::string_view error) {
        std::uint64_t held_back = 0;
        if (!sampler_.Take(Clock::now(), held_back)) return false;
        Log::Warning(message_, {{"error", error}, {"heldBack", std::to_string(held_back)}});
        return true;
    }

private:
    std::string_view message_;
    FloodSampler sampler_{1, 1s};
};

bool IsProbe(std::string_view target) {
    const std::string_view path = target.substr(0, target.find('?'));
    return std::find(std::begin(kProbePaths), std::end(kProbePaths), path) != std::end(kProbePaths);
}

// Why RFC 9112 does not let this request's framing (or the headers every request must carry
// once) through, or nothing. Beast has refused the worst already (two different lengths, a
// Content-Length next to a chunked coding), but takes any Transfer-Encoding that does not end in
// chunked as "no body", which a front proxy may read otherwise: the smuggling gap.
std::optional<std::string> FramingProblem(const bhttp::request<bhttp::string_body>& req) {
    const std::size_t hosts = req.count(bhttp::field::host);
    if (req.version() >= 11 && hosts != 1) {
        return "an HTTP/1.1 request needs exactly one Host header";  // RFC 9112 section 3.2
    }
    if (hosts > 1) return "more than one Host header";
    // Which credentials count would depend on who reads the headers: refuse rather than pick.
    if (req.count(bhttp::field::authorization) > 1) return "more than one Authorization header";
    if (req.count(bhttp::field::transfer_encoding) == 0) return std::nullopt;
    // RFC 9112 section 6.1: the framing of an HTTP/1.0 message with Transfer-Encoding is faulty.
    if (req.version() < 11) return "Transfer-Encoding is not allowed in an HTTP/1.0 request";
    if (req.count(bhttp::field::content_length) > 0) {
        return "Content-Length and Transfer-Encoding must not come together";
    }
    std::size_t codings = 0;
    bool chunked = false;
    for (auto [it, end] = req.equal_range(bhttp::field::transfer_encoding); it != end; ++it) {
        std::string_view list = it->value();
        while (!list.empty()) {
            const std::size_t comma = list.find(',');
            std::string_view coding = list.substr(0, comma);
            list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
            while (!coding.empty() && (coding.front() == ' ' || coding.front() == '\t'))
                coding.remove_prefix(1);
            while (!coding.empty() && (coding.back() == ' ' || coding.back() == '\t'))
                coding.remove_suffix(1);
            if (coding.empty()) continue;  // empty list elements are allowed and ignored
            ++codings;
            chunked = beast::iequals(coding, "chunked");
        }
    }
    if (codings != 1 || !chunked) return "the only Transfer-Encoding accepted is chunked";
    return std::nullopt;
}

}  // namespace

struct HttpServer::Impl : std::enable_shared_from_this<HttpServer::Impl> {
    Impl(asio::io_context& io_context, const ServerSettings& server_settings,
         asio::ssl::context* ctx, RequestHandler request_handler, RefusalWriter refusal_writer,
         Admission admission_check)
        : io(io_context),
          settings(server_settings),
          tls(ctx),
          handler(std::move(request_handler)),
          refusal(std::move(refusal_writer)),
          admission(std::move(admission_check)),
          acceptor(asio::make_strand(io_context)),
          backoff(acceptor.get_executor()) {}

    // Where a connection is, as the limit and Stop() see it.
    enum class Phase {
        kHandshake,  // TLS
        kWaiting,    // for a request, or for the rest of its headers
        kBody,       // admitted, its body arriving
        kHandling,
        kWriting,
        kClosing,  // after the last answer
    };
    // Why a connection's pending read was cut short.
    enum class Interrupt { kNone, kDeadline, kEvicted, kStopping };

    struct Connection {
        explicit Connection(const asio::any_io_executor& strand)
            : executor(strand), deadline(strand) {}
        asio::any_io_executor executor;  // the connection's strand
        // On the strand only.
        beast::tcp_stream* stream = nullptr;  // while the session runs
        asio::steady_timer deadline;          // for the request being read
        std::uint64_t deadline_generation = 0;
        Interrupt interrupt = Interrupt::kNone;
        bool probe_only = false;  // taken beyond the limit: one probe answered, then closed
        // Under Impl::mutex.
        Phase phase = Phase::kWaiting;
        Clock::time_point since = Clock::now();
        bool evicting = false;
    };
    using ConnectionPtr = std::shared_ptr<Connection>;

    static bool Evictable(Phase phase) {
        return phase == Phase::kHandshake || phase == Phase::kWaiting || phase == Phase::kClosing;
    }

    asio::io_context& io;
    ServerSettings settings;
    asio::ssl::context* tls;
    RequestHandler handler;
    RefusalWriter refusal;
    Admission admission;
    tcp::acceptor acceptor;
    asio::steady_timer backoff;  // on the acceptor's strand
    std::atomic<bool> stopping{false};
    std::atomic<std::uint64_t> accept_failures{0};
    std::atomic<std::uint64_t> accept_failures_logged{0};
    std::atomic<std::uint64_t> connections_evicted{0};
    std::atomic<std::uint64_t> connections_refused{0};
    RateLimitedWarning accept_warning{"accept failed"};
    RateLimitedWarning handshake_warning{"TLS handshake refused"};

    mutable std::mutex mutex;
    std::set<ConnectionPtr> connections;
    std::size_t evicting = 0;  // of `connections`, how many are being closed to make room

    void SetPhase(Connection& connection, Phase phase) {
        std::lock_guard lock(mutex);
        connection.phase = phase;
        connection.since = Clock::now();
    }

    // Makes room for a new connection, or says there is none (nullptr). On the acceptor's strand.
    ConnectionPtr Room(const asio::any_io_executor& strand) {
        auto connection = std::make_shared<Connection>(strand);
        ConnectionPtr victim;
        {
            std::lock_guard lock(mutex);
            const std::size_t live = connections.size() - evicting;
            if (live >= settings.max_connections) {
                // The oldest that has nothing admitted: an idle keep-alive connection or a client
                // too slow to finish its headers. Busy ones finish what they acknowledge.
                for (const ConnectionPtr& other : connections) {
                    if (!other->evicting && Evictable(other->phase) &&
                        (!victim || other->since < victim->since)) {
                        victim = other;
                    }
                }
                if (victim) {
                    victim->evicting = true;
                    ++evicting;
                } else if (live >= settings.max_connections + kProbeReserve) {
                    return nullptr;
                } else {
                    connection->probe_only = true;
                }
            }
            connections.insert(connection);
        }
        if (victim) {
            ++connections_evicted;
            asio::post(victim->executor, [victim, self = shared_from_this()] {
                {
                    std::lock_guard lock(self->mutex);
                    if (!Evictable(victim->phase)) {
                        // It was admitted meanwhile: let it finish; the limit is passed by one.
                        victim->evicting = false;
                        --self->evicting;
                        return;
                    }
                }
                Cut(victim, Interrupt::kEvicted);
            });
        }
        return connection;
    }

    void Untrack(const ConnectionPtr& connection) {
        std::lock_guard lock(mutex);
        if (connection->evicting) --evicting;
        connections.erase(connection);
    }

    // Cuts the connection's pending read; its session then sees why. On its strand.
    static void Cut(const ConnectionPtr& connection, Interrupt why) {
        if (connection->interrupt != Interrupt::kNone && why != Interrupt::kEvicted) return;
        connection->interrupt = why;
        if (connection->stream == nullptr) return;  // the session sees it when it starts
        beast::error_code ignored;
        if (why == Interrupt::kEvicted) {
            // Nothing is answered to an evicted connection: closing makes the cut final.
            connection->stream->socket().close(ignored);
            return;
        }
        // Cancel, not close: the session may still have an answer (408, 503) to write.
        connection->stream->socket().cancel(ignored);
        RepeatCancel(connection);
    }

    // A read whose completion is already queued when it is cancelled completes normally, and
    // Beast then starts the next read of the same request: the cut would be lost. So the
    // cancel is repeated until the session has seen the cut (answering or ending disarms it).
    static void RepeatCancel(const ConnectionPtr& connection) {
        const std::uint64_t generation = ++connection->deadline_generation;
        connection->deadline.expires_after(kCancelRepeat);
        connection->deadline.async_wait(
            [weak = std::weak_ptr<Connection>(connection), generation](beast::error_code ec) {
                auto connection = weak.lock();
                if (ec || !connection || connection->deadline_generation != generation ||
                    connection->stream == nullptr) {
                    return;
                }
                beast::error_code ignored;
                connection->stream->socket().cancel(ignored);
                RepeatCancel(connection);
            });
    }

    // The request being read must be complete by then. A timer of our own rather than the
    // stream's expiry: that one closes the socket, and the 408 could no longer be written.
    static void ArmDeadline(const ConnectionPtr& connection, std::chrono::milliseconds timeout) {
        const std::uint64_t generation = ++connection->deadline_generation;
        connection->deadline.expires_after(timeout);
        connection->deadline.async_wait(
            [weak = std::weak_ptr<Connection>(connection), generation](beast::error_code ec) {
                auto connection = weak.lock();
                if (!ec && connection && connection->deadline_generation == generation) {
                    Cut(connection, Interrupt::kDeadline);
                }
            });
    }
    static void DisarmDeadline(Connection& connection) {
        ++connection.deadline_generation;
        connection.deadline.cancel();
    }

    template <typename Body>
    static void Fill(bhttp::response<Body>& res, const HttpResponseOut& out, bool keep_alive,
                     const std::string& request_id) {
        res.result(out.status);
        res.set(bhttp::field::server, "MicroCare");
        res.set(bhttp::field::content_type, out.content_type);
        // Every body is data (JSON, text): never to be sniffed into something a browser runs.
        res.set("X-Content-Type-Options", "nosniff");
        res.set("X-Request-Id", request_id);
        for (const auto& [name, value] : out.headers) res.set(name, value);
        res.keep_alive(keep_alive);
        res.body() = out.body;
        res.prepare_payload();
    }

    // Writes one answer; false when it could not be.
    template <typename Stream>
    asio::awaitable<bool> Write(Stream& stream, Connection& connection, const HttpResponseOut& out,
                                bool keep_alive, const std::string& request_id) {
        DisarmDeadline(connection);
        if (connection.interrupt == Interrupt::kEvicted) co_return false;
        SetPhase(connection, Phase::kWriting);
        bhttp::response<bhttp::string_body> res;
        Fill(res, out, keep_alive, request_id);
        beast::get_lowest_layer(stream).expires_after(settings.request_timeout);
        auto [ec, written] =
            co_await bhttp::async_write(stream, res, asio::as_tuple(use_awaitable));
        (void)written;
        beast::get_lowest_layer(stream).expires_never();
        co_return !ec;
    }

    template <typename Stream>
    asio::awaitable<void> WriteRefusal(Stream& stream, Connection& connection, unsigned status,
                                       const std::string& reason) {
        const HttpResponseOut out = refusal(status, reason);
        const std::string request_id = NextRequestId();
        Log::Debug("request refused",
                   {{"request", request_id}, {"status", std::to_string(status)}, {"why", reason}});
        co_await Write(stream, connection, out, false, request_id);
    }

    // After a read that failed: the answer, when there is someone to answer and something to
    // say. True when one was written (the client may still be sending: linger before closing).
    template <typename Stream>
    asio::awaitable<bool> ReadFailed(Stream& stream, Connection& connection, beast::error_code ec,
                                     bool got_some) {
        switch (connection.interrupt) {
            case Interrupt::kEvicted:
                co_return false;
            case Interrupt::kDeadline:
                if (!got_some) co_return false;  // an idle keep-alive connection: just close
                co_await WriteRefusal(stream, connection, 408,
                                      "the request was not received in time");
                co_return true;
            case Interrupt::kStopping:
                if (!got_some) co_return false;
                co_await WriteRefusal(stream, connection, 503,
                                      "the service is stopping; send the request again");
                co_return true;
            case Interrupt::kNone:
                break;
        }
        if (ec == bhttp::error::end_of_stream) co_return false;  // closed between requests
        if (ec.category() != bhttp::make_error_code(bhttp::error::end_of_stream).category()) {
            co_return false;  // the connection failed: nobody to answer
        }
        unsigned status = 400;
        std::string reason = "the request is malformed (" + ec.message() + ")";
        if (ec == bhttp::error::body_limit) {
            status = 413;
            reason = "the request body exceeds the limit of " +
                     std::to_string(settings.max_body_bytes) + " bytes";
        } else if (ec == bhttp::error::header_limit) {
            status = 431;
            reason = "the request headers are too large";
        } else if (ec == bhttp::error::bad_version) {
            // 505 rather than 400: the request may be well formed in its own version (HTTP/2's
            // preface is), and 505 says what is refused. RFC 9112 would have HTTP/1.2 read as
            // 1.1, but no such version exists: only a fuzzer or a smuggling attempt sends it.
            status = 505;
            reason = "only HTTP/1.0 and HTTP/1.1 are served";
        }
        co_await WriteRefusal(stream, connection, status, reason);
        co_return true;
    }

    // Serves requests until the connection should close. True when the client may still be
    // sending something unread (a refusal went out before its body): linger before closing.
    template <typename Stream>
    asio::awaitable<bool> Serve(Stream& stream, ConnectionPtr connection,
                                std::string client_certificate = {}) {
        beast::flat_buffer buffer;
        auto& tcp_stream = beast::get_lowest_layer(stream);
        while (!stopping) {
            bhttp::request_parser<bhttp::string_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(settings.max_header_bytes));
            // The body limit is set once the request is admitted: a client without credentials
            // is told 401, not how much it could send.
            parser.body_limit(boost::none);
            SetPhase(*connection, Phase::kWaiting);
            ArmDeadline(connection, settings.request_timeout);
            tcp_stream.expires_never();
            auto [ec, header_bytes] = co_await bhttp::async_read_header(
                stream, buffer, parser, asio::as_tuple(use_awaitable));
            (void)header_bytes;
            if (ec) {
                const bool got_some = parser.got_some() || buffer.size() > 0;
                const bool answered = co_await ReadFailed(stream, *connection, ec, got_some);
                co_return answered;
            }

            auto& req = parser.get();
            HttpRequestIn in;
            in.method = std::string(req.method_string());
            in.target = std::string(req.target());
            in.content_type = std::string(req[bhttp::field::content_type]);
            in.authorization = std::string(req[bhttp::field::authorization]);
            in.origin = std::string(req[bhttp::field::origin]);
            in.request_id = NextRequestId();
            in.client_certificate = client_certificate;
            const std::string request_id = in.request_id;

            std::optional<HttpResponseOut> refused;
            if (auto problem = FramingProblem(req)) {
                refused = refusal(400, *problem);
            } else if (connection->probe_only && !IsProbe(in.target)) {
                refused = refusal(503, "too many connections; send the request again shortly");
            } else if (admission) {
                refused = admission(in);
            }
            const auto length = parser.content_length();
            if (!refused && length && *length > settings.max_body_bytes) {
                refused = refusal(413, "the request body exceeds the limit of " +
                                           std::to_string(settings.max_body_bytes) + " bytes");
            }
            if (refused) {
                co_await Write(stream, *connection, *refused, false, request_id);
                co_return true;
            }

            parser.body_limit(settings.max_body_bytes);
            if (!parser.is_done()) {
                if (req.version() >= 11 &&
                    beast::iequals(req[bhttp::field::expect], "100-continue")) {
                    bhttp::response<bhttp::empty_body> proceed{bhttp::status::continue_, 11};
                    auto [proceed_ec, proceed_bytes] =
                        co_await bhttp::async_write(stream, proceed, asio::as_tuple(use_awaitable));
                    (void)proceed_bytes;
                    if (proceed_ec) co_return false;
                }
                SetPhase(*connection, Phase::kBody);
                auto [body_ec, body_bytes] = co_await bhttp::async_read(
                    stream, buffer, parser, asio::as_tuple(use_awaitable));
                (void)body_bytes;
                if (body_ec) {
                    const bool answered = co_await ReadFailed(stream, *connection, body_ec, true);
                    co_return answered;
                }
            }
            DisarmDeadline(*connection);
            in.body = std::move(req.body());
            const bool keep_alive = req.keep_alive() && !connection->probe_only;

            SetPhase(*connection, Phase::kHandling);
            HttpResponseOut out = co_await handler(std::move(in));
            const bool keep = keep_alive && !stopping;
            const bool written = co_await Write(stream, *connection, out, keep, request_id);
            if (!written || !keep) co_return false;
        }
        co_return false;
    }

    // Reads and drops what the client still sends, briefly, then lets the socket close.
    asio::awaitable<void> Linger(beast::tcp_stream& stream, Connection& connection) {
        SetPhase(connection, Phase::kClosing);
        stream.expires_after(
            std::min<std::chrono::milliseconds>(settings.request_timeout, kLingerTime));
        std::array<char, 4096> sink;
        std::size_t dropped = 0;
        while (dropped < kLingerBytes) {
            auto [ec, n] =
                co_await stream.async_read_some(asio::buffer(sink), asio::as_tuple(use_awaitable));
            if (ec) break;
            dropped += n;
        }
    }

    asio::awaitable<void> Session(tcp::socket socket, ConnectionPtr connection) {
        auto self = shared_from_this();
        beast::tcp_stream stream(std::move(socket));
        connection->stream = &stream;
        struct Untracker {
            Impl& impl;
            const ConnectionPtr& connection;
            ~Untracker() {
                connection->stream = nullptr;
                DisarmDeadline(*connection);
                impl.Untrack(connection);
            }
        } untrack{*this, connection};
        if (connection->interrupt != Interrupt::kNone) co_return;  // cut before it started

        if (tls == nullptr) {
            const bool linger = co_await Serve(stream, connection);
            beast::error_code ignored;
            stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
            if (linger && connection->interrupt != Interrupt::kEvicted) {
                co_await Linger(stream, *connection);
            }
            co_return;
        }
        beast::ssl_stream<beast::tcp_stream&> secure(stream, *tls);
        SetPhase(*connection, Phase::kHandshake);
        stream.expires_after(settings.request_timeout);
        auto [ec] = co_await secure.async_handshake(asio::ssl::stream_base::server,
                                                    asio::as_tuple(use_awaitable));
        if (ec) {
            handshake_warning.Write(ec.message());
            co_return;
        }
        co_await Serve(secure, connection, VerifiedSubject(secure.native_handle()));
        if (connection->interrupt == Interrupt::kEvicted) co_return;
        SetPhase(*connection, Phase::kClosing);
        stream.expires_after(std::chrono::seconds(5));
        co_await secure.async_shutdown(asio::as_tuple(use_awaitable));
    }

    asio::awaitable<void> Accept() {
        auto self = shared_from_this();
        std::chrono::milliseconds wait{0};
        while (!stopping) {
            auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io),
                                                               asio::as_tuple(use_awaitable));
            if (ec) {
                if (stopping || ec == asio::error::operation_aborted) co_return;
                ++accept_failures;
                if (accept_warning.Write(ec.message())) ++accept_failures_logged;
                // That client gave up before it was accepted: nothing is short, go on.
                if (ec == asio::error::connection_aborted) continue;
                wait = std::clamp(wait * 2, kAcceptBackoffFirst, kAcceptBackoffMax);
                backoff.expires_after(wait);
                auto [wait_ec] = co_await backoff.async_wait(asio::as_tuple(use_awaitable));
                (void)wait_ec;
                continue;
            }
            wait = std::chrono::milliseconds(0);
            const asio::any_io_executor strand = socket.get_executor();
            ConnectionPtr connection = Room(strand);
            if (!connection) {
                ++connections_refused;
                continue;  // closing the socket is the answer: no room even for a probe
            }
            asio::co_spawn(strand, Session(std::move(socket), std::move(connection)),
                           asio::detached);
        }
    }
};

HttpServer::HttpServer(asio::io_context& io, const ServerSettings& settings,
                       asio::ssl::context* tls, RequestHandler handler, RefusalWriter refusal,
                       Admission admission)
    : impl_(std::make_shared<Impl>(io, settings, tls, std::move(handler), std::move(refusal),
                                   std::move(admission))) {}

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
    // Every connection is a descriptor, and the store, the log and the EHR need some too.
    rlimit files{};
    const std::size_t needed = impl_->settings.max_connections + kProbeReserve + 64;
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY &&
        files.rlim_cur < needed) {
        Log::Warning("the open-file limit is low for server.maxConnections (raise LimitNOFILE)",
                     {{"limit", std::to_string(files.rlim_cur)},
                      {"maxConnections", std::to_string(impl_->settings.max_connections)}});
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
        impl->backoff.cancel();
    });
    // Connections waiting for a request are cut (one with part of a request gets a 503). A
    // session in the middle of a request finishes it and then sees `stopping`.
    std::lock_guard lock(impl_->mutex);
    for (const Impl::ConnectionPtr& connection : impl_->connections) {
        asio::post(connection->executor, [connection, impl = impl_] {
            {
                std::lock_guard inner(impl->mutex);
                if (connection->phase != Impl::Phase::kWaiting &&
                    connection->phase != Impl::Phase::kHandshake) {
                    return;
                }
            }
            Impl::Cut(connection, Impl::Interrupt::kStopping);
        });
    }
}

std::size_t HttpServer::open_connections() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->connections.size();
}

HttpServerStats HttpServer::stats() const {
    HttpServerStats stats;
    stats.accept_failures = impl_->accept_failures;
    stats.accept_failures_logged = impl_->accept_failures_logged;
    stats.connections_evicted = impl_->connections_evicted;
    stats.connections_refused = impl_->connections_refused;
    return stats;
}

}  // namespace microcare::adapter
