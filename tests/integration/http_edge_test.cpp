// Hostile input at the HTTP edge (issue 7): each test talks raw TCP to the real server in
// process, on port 0, with bytes no well-behaved client would send, and checks that every
// refusal is an answer (a FHIR OperationOutcome with its status, then the connection closed),
// that a client without credentials cannot make the server read a body, and that a full house of
// half-sent requests does not silence the health probes.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "adapter/server/fhir_endpoint.hpp"
#include "adapter/server/http_server.hpp"
#include "adapter/service/service.hpp"
#include "adapter/service_config.hpp"
#include "service_harness.hpp"

namespace microcare::testing {
namespace {

using namespace std::chrono_literals;

constexpr const char* kMetricsToken = "metrics-scraper-token-0123456789";

bool IEquals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

struct RawResponse {
    unsigned status = 0;
    std::string head;  // status line and header fields
    std::string body;

    // The first header field of that name ("" when absent).
    std::string Header(std::string_view name) const {
        std::size_t at = head.find("\r\n");
        while (at != std::string::npos && at + 2 < head.size()) {
            const std::size_t start = at + 2;
            const std::size_t end = head.find("\r\n", start);
            const std::string_view line(head.data() + start,
                                        (end == std::string::npos ? head.size() : end) - start);
            const auto colon = line.find(':');
            if (colon != std::string_view::npos && IEquals(line.substr(0, colon), name)) {
                std::string_view value = line.substr(colon + 1);
                while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
                return std::string(value);
            }
            at = end;
        }
        return "";
    }
};

// One TCP connection driven byte by byte: what a hostile client can do that an HTTP library
// would not let it.
class RawConnection {
public:
    explicit RawConnection(unsigned short port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd_ < 0) return;
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(port);
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) Close();
    }
    // A connected socket made beforehand (see the accept-failure test).
    struct Adopt {};
    RawConnection(Adopt, int fd) : fd_(fd) {}
    ~RawConnection() { Close(); }
    RawConnection(const RawConnection&) = delete;
    RawConnection& operator=(const RawConnection&) = delete;

    bool connected() const { return fd_ >= 0; }

    bool Send(std::string_view bytes) {
        while (!bytes.empty() && fd_ >= 0) {
            const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return fd_ >= 0;
    }

    // One response (head, then a Content-Length body), or nothing if none arrives in time.
    std::optional<RawResponse> Read(std::chrono::milliseconds timeout = 2s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::size_t end = std::string::npos;
        while ((end = pending_.find("\r\n\r\n")) == std::string::npos) {
            if (!Fill(deadline)) return std::nullopt;
        }
        RawResponse response;
        response.head = pending_.substr(0, end);
        pending_.erase(0, end + 4);
        if (response.head.size() < 12 || !response.head.starts_with("HTTP/1.")) {
            return std::nullopt;
        }
        response.status = static_cast<unsigned>(std::stoul(response.head.substr(9, 3)));
        const std::string length = response.Header("Content-Length");
        const std::size_t size = length.empty() ? 0 : std::stoul(length);
        while (pending_.size() < size) {
            if (!Fill(deadline)) return std::nullopt;
        }
        response.body = pending_.substr(0, size);
        pending_.erase(0, size);
        return response;
    }

    // True once the server has closed the connection (end of stream or reset) with nothing
    // more to read; waits at most `timeout`.
    bool Closed(std::chrono::milliseconds timeout = 2s) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        while (pending_.empty()) {
            if (!Fill(deadline)) return eof_;
        }
        return false;  // more bytes came: not closed yet
    }

private:
    // Reads what is there; false at end of stream, on an error or at the deadline.
    bool Fill(std::chrono::steady_clock::time_point deadline) {
        if (fd_ < 0 || eof_) return false;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(std::max<long long>(0, left.count()))) <= 0) {
            return false;
        }
        char buffer[16384];
        const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
        if (n <= 0) {
            eof_ = true;
            return false;
        }
        pending_.append(buffer, static_cast<std::size_t>(n));
        return true;
    }

    void Close() {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    int fd_ = -1;
    bool eof_ = false;
    std::string pending_;
};

bool IsOperationOutcome(const RawResponse& response) {
    return response.body.find("\"resourceType\":\"OperationOutcome\"") != std::string::npos &&
           response.Header("Content-Type").starts_with("application/fhir+json");
}

class HttpEdgeTest : public ::testing::Test {
protected:
    void SetUp() override {
        ehr_ = std::make_unique<FakeEhr>();
        dir_ = FreshDirectory("edge");
    }
    void TearDown() override {
        if (service_) service_->Stop();
        service_.reset();
        ehr_->Stop();
        std::filesystem::remove_all(dir_);
    }

    void Start(const std::function<void(adapter::ServiceConfig&)>& adjust = {}) {
        adapter::ServiceConfig config = TestConfig(ehr_->BaseUrl(), dir_);
        config.log_level = "error";
        if (adjust) adjust(config);
        auto service = adapter::Service::Create(config);
        ASSERT_TRUE(service) << service.error().message();
        service_ = std::move(*service);
        service_->Start();
        port_ = service_->port();
    }

    // Sends `request` on a new connection and reads one answer.
    std::optional<RawResponse> Exchange(const std::string& request,
                                        std::chrono::milliseconds timeout = 2s) {
        RawConnection connection(port_);
        if (!connection.connected() || !connection.Send(request)) return std::nullopt;
        return connection.Read(timeout);
    }

    std::unique_ptr<FakeEhr> ehr_;
    std::unique_ptr<adapter::Service> service_;
    std::filesystem::path dir_;
    unsigned short port_ = 0;
};

const std::string kAuth = std::string("Authorization: Bearer ") + kToken + "\r\n";

// An HttpServer alone, with a handler of the test's choosing, on an I/O thread of its own.
class BareServer {
public:
    explicit BareServer(adapter::RequestHandler handler)
        : server_(io_, Settings(), nullptr, std::move(handler),
                  adapter::FhirEndpoint::ProtocolRefusal) {
        auto port = server_.Listen();
        port_ = port ? *port : 0;
        server_.Start();
        runner_ = std::thread([this] { io_.run(); });
    }
    ~BareServer() {
        server_.Stop();
        io_.stop();
        runner_.join();
    }
    BareServer(const BareServer&) = delete;
    BareServer& operator=(const BareServer&) = delete;

    adapter::HttpServer& server() { return server_; }
    unsigned short port() const { return port_; }

private:
    static adapter::ServerSettings Settings() {
        adapter::ServerSettings settings;
        settings.listen = "127.0.0.1";
        settings.port = 0;
        settings.request_timeout = 5s;
        return settings;
    }

    boost::asio::io_context io_;
    adapter::HttpServer server_;
    unsigned short port_ = 0;
    std::thread runner_;
};

// ---- 1. Denial of service without credentials -------------------------------------------

// Half-sent requests beyond the limit do not pile up: the oldest are closed to make room, and
// /healthz keeps answering while the limit is held, with the process idle (no spinning) and the
// log quiet (an eviction is counted in /metrics, not logged).
TEST_F(HttpEdgeTest, HalfSentRequestsCannotHoldMoreThanTheLimitOrSilenceHealthz) {
    Start([](adapter::ServiceConfig& config) {
        config.server.max_connections = 16;
        config.server.request_timeout = 20s;  // no help from the timeout
        config.server.metrics_token = kMetricsToken;
        config.log_level = "info";
    });
    ::testing::internal::CaptureStderr();
    std::vector<std::unique_ptr<RawConnection>> holders;
    for (int i = 0; i < 40; ++i) {
        holders.push_back(std::make_unique<RawConnection>(port_));
        ASSERT_TRUE(holders.back()->connected());
        ASSERT_TRUE(holders.back()->Send(
            "POST /fhir/$process-message HTTP/1.1\r\nHost: microcare\r\nContent-Type: appl"));
    }
    std::size_t closed = 0;
    ASSERT_TRUE(WaitFor(
        [&] {
            closed = 0;
            for (auto& holder : holders) closed += holder->Closed(0ms) ? 1 : 0;
            return closed >= 24;
        },
        3s))
        << "only " << closed << " of 40 half-sent requests were closed with a limit of 16";
    // The oldest went first.
    EXPECT_TRUE(holders.front()->Closed(0ms));
    EXPECT_FALSE(holders.back()->Closed(0ms));

    for (int probe = 0; probe < 3; ++probe) {
        auto health = Exchange("GET /healthz HTTP/1.1\r\nHost: microcare\r\n\r\n");
        ASSERT_TRUE(health) << "/healthz did not answer while the limit was held";
        EXPECT_EQ(health->status, 200u);
        EXPECT_EQ(health->body, "ok\n");
    }

    // Held for a second: a server that spun on its sockets would use about a second of CPU.
    const auto cpu = [] {
        rusage usage{};
        ::getrusage(RUSAGE_SELF, &usage);
        return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
    };
    const auto cpu_before = cpu();
    std::this_thread::sleep_for(1s);
    EXPECT_LT(cpu() - cpu_before, 300ms)
        << "the server worked while only held connections were open";
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_LT(log.size(), 2048u) << log.substr(0, 2048);

    auto page = Exchange("GET /metrics HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer " +
                         std::string(kMetricsToken) + "\r\n\r\n");
    ASSERT_TRUE(page);
    const std::string evicted = "\nmicrocare_http_connections_evicted_total ";
    const auto at = page->body.find(evicted);
    ASSERT_NE(at, std::string::npos) << page->body;
    EXPECT_GE(std::stoul(page->body.substr(at + evicted.size())), 24u) << page->body;
}

// Running out of file descriptors makes accept() fail until one is free. The server must wait
// a moment between attempts (not spin on one core) and log a line now and then, not each time.
TEST(HttpServerAccept, FailuresBackOffAndAreLoggedAtMostOncePerSecond) {
    BareServer bare([](adapter::HttpRequestIn) -> boost::asio::awaitable<adapter::HttpResponseOut> {
        co_return adapter::HttpResponseOut{200, "text/plain", "ok\n", {}};
    });
    ASSERT_NE(bare.port(), 0);
    adapter::HttpServer& server = bare.server();

    // The client socket exists before the descriptors run out; the server's accept() then
    // finds none left for the connection.
    const int client = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(client, 0);
    struct Exhaust {
        rlimit saved{};
        std::vector<int> fillers;
        Exhaust() {
            ::getrlimit(RLIMIT_NOFILE, &saved);
            const int lowest_free = ::dup(0);
            ::close(lowest_free);
            rlimit low = saved;
            low.rlim_cur = static_cast<rlim_t>(lowest_free + 16);
            ::setrlimit(RLIMIT_NOFILE, &low);
            for (int fd; (fd = ::dup(0)) >= 0;) fillers.push_back(fd);
        }
        ~Exhaust() {
            for (int fd : fillers) ::close(fd);
            ::setrlimit(RLIMIT_NOFILE, &saved);
        }
    };
    std::optional<Exhaust> exhaust(std::in_place);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(bare.port());
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);

    ASSERT_TRUE(WaitFor([&] { return server.stats().accept_failures >= 4; }, 5s));
    const adapter::HttpServerStats stats = server.stats();
    exhaust.reset();
    // Four failures take some 350 ms with the back-off; a loop retrying at once has made
    // thousands by the time WaitFor looks.
    EXPECT_LT(stats.accept_failures, 20u);
    EXPECT_LE(stats.accept_failures_logged, 2u);

    // Once a descriptor is free the waiting connection is served.
    RawConnection connection(RawConnection::Adopt{}, client);
    ASSERT_TRUE(connection.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto answer = connection.Read(3s);
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 200u);
}

// Stop() cuts what waits for a request, answers a half-sent one (503) and lets the request being
// handled finish, its answer saying Connection: close.
TEST(HttpServerStop, TheRequestInFlightIsAnsweredAndWaitingConnectionsAreClosed) {
    std::atomic<int> entered{0};
    BareServer bare(
        [&entered](adapter::HttpRequestIn) -> boost::asio::awaitable<adapter::HttpResponseOut> {
            ++entered;
            boost::asio::steady_timer pause(co_await boost::asio::this_coro::executor, 300ms);
            co_await pause.async_wait(boost::asio::use_awaitable);
            co_return adapter::HttpResponseOut{200, "text/plain", "done\n", {}};
        });
    RawConnection idle(bare.port());
    RawConnection half(bare.port());
    RawConnection busy(bare.port());
    ASSERT_TRUE(half.Send("GET /healthz HTTP/1.1\r\nHo"));
    ASSERT_TRUE(busy.Send("GET /healthz HTTP/1.1\r\nHost: m\r\n\r\n"));
    ASSERT_TRUE(WaitFor([&] { return entered == 1 && bare.server().open_connections() == 3; }, 2s));
    bare.server().Stop();

    auto answer = busy.Read(2s);
    ASSERT_TRUE(answer) << "the request in flight was cut";
    EXPECT_EQ(answer->status, 200u);
    EXPECT_EQ(answer->body, "done\n");
    EXPECT_TRUE(IEquals(answer->Header("Connection"), "close"));
    EXPECT_TRUE(busy.Closed());

    auto refused = half.Read(2s);
    ASSERT_TRUE(refused);
    EXPECT_EQ(refused->status, 503u);
    EXPECT_TRUE(IsOperationOutcome(*refused)) << refused->body;
    EXPECT_TRUE(half.Closed());

    EXPECT_TRUE(idle.Closed());
}

// Authentication is decided on the headers: the 16 MB the client announces are never read.
TEST_F(HttpEdgeTest, AnUnauthenticatedPostIsRefusedBeforeItsBodyIsRead) {
    Start([](adapter::ServiceConfig& config) { config.server.max_body_bytes = 32 * 1024 * 1024; });
    for (const std::string& credentials :
         {std::string(), std::string("Authorization: Bearer not-the-right-token-at-all\r\n")}) {
        RawConnection connection(port_);
        ASSERT_TRUE(
            connection.Send("POST /fhir/$process-message HTTP/1.1\r\nHost: microcare\r\n"
                            "Content-Type: application/fhir+json\r\nContent-Length: 16000000\r\n" +
                            credentials + "\r\n{\"resourceType\":\"Bundle\""));
        auto answer = connection.Read(1500ms);
        ASSERT_TRUE(answer) << "no answer before the body was sent";
        EXPECT_EQ(answer->status, 401u);
        EXPECT_TRUE(IsOperationOutcome(*answer)) << answer->body;
        EXPECT_TRUE(IEquals(answer->Header("Connection"), "close"));
        EXPECT_TRUE(connection.Closed());
    }
}

// A client that waits for 100 Continue is told to go on once its headers are admitted.
TEST_F(HttpEdgeTest, AnAdmittedRequestThatExpectsContinueIsToldToSendItsBody) {
    Start();
    RawConnection connection(port_);
    const std::string body = R"({"resourceType":"Encounter","id":"e"})";
    ASSERT_TRUE(connection.Send("POST /fhir/notifications HTTP/1.1\r\nHost: microcare\r\n" + kAuth +
                                "Content-Type: application/fhir+json\r\nExpect: 100-continue\r\n"
                                "Content-Length: " +
                                std::to_string(body.size()) + "\r\n\r\n"));
    auto proceed = connection.Read(1500ms);
    ASSERT_TRUE(proceed);
    EXPECT_EQ(proceed->status, 100u);
    ASSERT_TRUE(connection.Send(body));
    auto answer = connection.Read();
    ASSERT_TRUE(answer);
    EXPECT_NE(answer->status, 401u);
    EXPECT_NE(answer->status, 0u);
}

// ---- 2. Request smuggling ------------------------------------------------------------------

class SmugglingTest : public HttpEdgeTest, public ::testing::WithParamInterface<const char*> {};

// A Transfer-Encoding other than exactly "chunked" is refused, and what follows it is not read
// as a second request.
TEST_P(SmugglingTest, ATransferEncodingOtherThanChunkedIsRefusedAndNothingFollows) {
    Start();
    RawConnection connection(port_);
    ASSERT_TRUE(connection.Send(std::string("POST /fhir/notifications HTTP/1.1\r\nHost: m\r\n") +
                                kAuth + "Transfer-Encoding: " + GetParam() +
                                "\r\n\r\n"
                                "GET /healthz HTTP/1.1\r\nHost: m\r\n\r\n"));
    auto answer = connection.Read();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 400u) << answer->body;
    EXPECT_TRUE(IsOperationOutcome(*answer));
    EXPECT_TRUE(IEquals(answer->Header("Connection"), "close"));
    EXPECT_TRUE(connection.Closed()) << "the smuggled request was answered";
}

INSTANTIATE_TEST_SUITE_P(Codings, SmugglingTest,
                         ::testing::Values("identity", "xchunked", "chunked, identity",
                                           "identity, chunked", "chunked, chunked", "gzip",
                                           "chunked;x=1", ""));

TEST_F(HttpEdgeTest, ChunkedInAnyCaseWithSpacesIsAccepted) {
    Start();
    const std::string body = R"({"resourceType":"Encounter","id":"e"})";
    char size[16];
    std::snprintf(size, sizeof size, "%zx", body.size());
    RawConnection connection(port_);
    ASSERT_TRUE(
        connection.Send("POST /fhir/notifications/Encounter/e HTTP/1.1\r\nHost: m\r\n" + kAuth +
                        "Content-Type: application/fhir+json\r\nTransfer-Encoding:  ChUnKeD \r\n"
                        "\r\n" +
                        size + "\r\n" + body + "\r\n0\r\n\r\n"));
    auto answer = connection.Read();
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 200u) << answer->body;
}

// ---- 3. Refusals with an answer ------------------------------------------------------------

TEST_F(HttpEdgeTest, ARequestTooSlowToArriveGets408) {
    Start([](adapter::ServiceConfig& config) {
        config.server.request_timeout = std::chrono::milliseconds(300);
    });
    // Headers cut short, then a body cut short.
    for (const std::string& partial :
         {std::string("GET /healthz HTTP/1.1\r\nHost: mi"),
          "POST /fhir/notifications HTTP/1.1\r\nHost: m\r\n" + kAuth +
              "Content-Type: application/fhir+json\r\nContent-Length: 100\r\n\r\n{\"res"}) {
        RawConnection connection(port_);
        ASSERT_TRUE(connection.Send(partial));
        auto answer = connection.Read(3s);
        ASSERT_TRUE(answer) << "the connection was cut without a 408";
        EXPECT_EQ(answer->status, 408u);
        EXPECT_TRUE(IsOperationOutcome(*answer)) << answer->body;
        EXPECT_TRUE(connection.Closed());
    }
}

struct Framing {
    const char* name;
    std::string request;
    unsigned status;
};
void PrintTo(const Framing& f, std::ostream* os) { *os << f.name; }

class FramingTest : public HttpEdgeTest, public ::testing::WithParamInterface<Framing> {};

// Framing RFC 9112 does not allow is answered (an OperationOutcome), then the connection closed.
TEST_P(FramingTest, IsRefusedWithAnOperationOutcomeAndTheConnectionClosed) {
    Start();
    RawConnection connection(port_);
    ASSERT_TRUE(connection.Send(GetParam().request));
    auto answer = connection.Read();
    ASSERT_TRUE(answer) << "closed without an answer";
    EXPECT_EQ(answer->status, GetParam().status) << answer->body;
    EXPECT_TRUE(IsOperationOutcome(*answer)) << answer->body;
    EXPECT_TRUE(IEquals(answer->Header("Connection"), "close"));
    EXPECT_TRUE(connection.Closed());
}

const std::string kPost = "POST /fhir/notifications HTTP/1.1\r\nHost: m\r\n" + kAuth;

INSTANTIATE_TEST_SUITE_P(
    Requests, FramingTest,
    ::testing::Values(
        Framing{"length_and_chunked",
                kPost + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
        Framing{"chunked_and_length",
                kPost + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400},
        Framing{"two_lengths", kPost + "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}}", 400},
        Framing{"negative_length", kPost + "Content-Length: -1\r\n\r\n", 400},
        Framing{"overflowing_length", kPost + "Content-Length: 99999999999999999999999\r\n\r\n",
                400},
        Framing{"bad_chunk_size", kPost + "Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
                400},
        Framing{"chunked_in_http_1_0",
                "POST /fhir/notifications HTTP/1.0\r\n" + kAuth +
                    "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                400},
        Framing{"not_a_request_line", std::string("HELLO\r\n\r\n"), 400},
        Framing{"field_without_colon", std::string("GET /healthz HTTP/1.1\r\nHost m\r\n\r\n"), 400},
        Framing{"http_1_2", std::string("GET /healthz HTTP/1.2\r\nHost: m\r\n\r\n"), 505},
        Framing{"http_2_0", std::string("GET /healthz HTTP/2.0\r\nHost: m\r\n\r\n"), 505},
        Framing{"no_host", std::string("GET /healthz HTTP/1.1\r\n\r\n"), 400},
        Framing{"two_hosts", std::string("GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
                400},
        Framing{"two_authorizations",
                "POST /fhir/notifications/Encounter/e HTTP/1.1\r\nHost: m\r\n" + kAuth +
                    "Authorization: Bearer someone-else-entirely-0123\r\n\r\n",
                400}),
    [](const ::testing::TestParamInfo<Framing>& info) { return std::string(info.param.name); });

// ---- 4. Smaller items -----------------------------------------------------------------------

TEST_F(HttpEdgeTest, TheBearerSchemeIsCaseInsensitive) {
    Start();
    for (const char* scheme : {"BEARER", "bearer", "Bearer", "bEaReR"}) {
        auto answer = Exchange(std::string("POST /fhir/notifications/Encounter/e HTTP/1.1\r\n"
                                           "Host: m\r\nAuthorization: ") +
                               scheme + " " + kToken + "\r\nContent-Length: 0\r\n\r\n");
        ASSERT_TRUE(answer);
        EXPECT_EQ(answer->status, 200u) << scheme << ": " << answer->body;
    }
}

TEST_F(HttpEdgeTest, Http10WithoutHostIsServed) {
    Start();
    auto answer = Exchange("GET /healthz HTTP/1.0\r\n\r\n");
    ASSERT_TRUE(answer);
    EXPECT_EQ(answer->status, 200u);
}

TEST_F(HttpEdgeTest, BytesOfThePathThatAreNotPrintableAsciiAreNeverEchoed) {
    Start();
    for (const char* method : {"GET", "DELETE"}) {
        auto answer =
            Exchange(std::string(method) + " /fhir/\xff\xfe\x80q HTTP/1.1\r\nHost: m\r\n\r\n");
        ASSERT_TRUE(answer);
        EXPECT_EQ(answer->status, 404u);
        // Printable ASCII only: valid UTF-8, safe in a log line and a terminal.
        for (char c : answer->body) EXPECT_LT(static_cast<unsigned char>(c), 0x80u);
        EXPECT_NE(answer->body.find("%FF%FE%80q"), std::string::npos) << answer->body;
    }
}

TEST_F(HttpEdgeTest, EveryAnswerSaysNoSniff) {
    Start();
    for (const std::string& request :
         {std::string("GET /healthz HTTP/1.1\r\nHost: m\r\n\r\n"),
          std::string("GET /nowhere HTTP/1.1\r\nHost: m\r\n\r\n"),
          std::string("GET /fhir/metadata HTTP/1.1\r\nHost: m\r\n\r\n"),
          std::string("POST /fhir/$process-message HTTP/1.1\r\nHost: m\r\n\r\n"),
          std::string("GET /healthz HTTP/1.1\r\n\r\n")}) {
        auto answer = Exchange(request);
        ASSERT_TRUE(answer) << request;
        EXPECT_EQ(answer->Header("X-Content-Type-Options"), "nosniff") << request;
    }
}

TEST_F(HttpEdgeTest, MetricsNeedATokenWhileProbesStayOpenAndSayLittle) {
    Start([](adapter::ServiceConfig& config) { config.server.metrics_token = kMetricsToken; });
    auto metrics = [&](const std::string& authorization) {
        return Exchange("GET /metrics HTTP/1.1\r\nHost: m\r\n" + authorization + "\r\n");
    };
    auto anonymous = metrics("");
    ASSERT_TRUE(anonymous);
    EXPECT_EQ(anonymous->status, 401u);
    EXPECT_EQ(anonymous->body.find("microcare_"), std::string::npos);
    EXPECT_TRUE(IsOperationOutcome(*anonymous));
    auto wrong = metrics("Authorization: Bearer not-the-right-token-at-all\r\n");
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401u);
    for (const std::string& token : {std::string(kMetricsToken), std::string(kToken)}) {
        auto scraped = metrics("Authorization: Bearer " + token + "\r\n");
        ASSERT_TRUE(scraped);
        EXPECT_EQ(scraped->status, 200u);
        EXPECT_NE(scraped->body.find("microcare_jobs_queued"), std::string::npos);
    }
    // The metrics token opens nothing else.
    auto trigger = Exchange(
        "POST /fhir/notifications/Encounter/e HTTP/1.1\r\nHost: m\r\nAuthorization: Bearer " +
        std::string(kMetricsToken) + "\r\nContent-Length: 0\r\n\r\n");
    ASSERT_TRUE(trigger);
    EXPECT_EQ(trigger->status, 401u);

    auto health = Exchange("GET /healthz HTTP/1.1\r\nHost: m\r\n\r\n");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200u);
    EXPECT_EQ(health->body, "ok\n");
    auto ready = Exchange("GET /readyz HTTP/1.1\r\nHost: m\r\n\r\n");
    ASSERT_TRUE(ready);
    EXPECT_EQ(ready->status, 200u);
    // The body names the pack in force (service_test.cpp checks its fields).
    EXPECT_TRUE(ready->body.starts_with(R"({"status":"ready","rulePack":{"id":")")) << ready->body;
}

// ---- configuration --------------------------------------------------------------------------

std::optional<adapter::ServiceConfig> Parse(const std::string& server_extra,
                                            fhir::IssueList& issues) {
    const std::string json = R"({"server":{"auth":{"bearerTokens":["${IN}"]})" + server_extra +
                             R"(},"ehr":{"baseUrl":"https://ehr.example/fhir"}})";
    adapter::EnvLookup env = [](const std::string& name) -> std::optional<std::string> {
        if (name == "IN") return std::string(kToken);
        if (name == "SCRAPE") return std::string(kMetricsToken);
        return std::nullopt;
    };
    adapter::FileReader files = [](const std::string&) -> std::optional<std::string> {
        return std::string(kMetricsToken) + "\n";
    };
    return adapter::ParseServiceConfig(json, env, files, issues);
}

TEST(HttpEdgeConfig, MaxConnectionsAndTheMetricsTokenAreRead) {
    fhir::IssueList issues;
    auto defaults = Parse("", issues);
    ASSERT_TRUE(defaults);
    EXPECT_EQ(defaults->server.max_connections, 512u);
    EXPECT_TRUE(defaults->server.metrics_token.empty());

    auto set = Parse(R"(,"maxConnections":64,"metricsToken":"${SCRAPE}")", issues);
    ASSERT_TRUE(set);
    EXPECT_EQ(set->server.max_connections, 64u);
    EXPECT_EQ(set->server.metrics_token, kMetricsToken);

    auto from_file = Parse(R"(,"metricsTokenFile":"/run/secrets/scrape")", issues);
    ASSERT_TRUE(from_file);
    EXPECT_EQ(from_file->server.metrics_token, kMetricsToken);

    for (const char* bad : {R"(,"maxConnections":0)", R"(,"metricsToken":"short")"}) {
        fhir::IssueList refused;
        EXPECT_FALSE(Parse(bad, refused)) << bad;
        EXPECT_TRUE(refused.HasErrors()) << bad;
    }
}

}  // namespace
}  // namespace microcare::testing
