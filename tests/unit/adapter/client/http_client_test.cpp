// The HTTP(S) client against a real server on 127.0.0.1: keep-alive reuse and its limits, the
// retry of a request that met a connection the server had closed, deadlines, size limits, error
// mapping, and TLS verification with a CA made by the test.
#include "adapter/client/http_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <thread>

#include "test_pki.hpp"
#include "test_server.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using namespace asio::experimental::awaitable_operators;
using test_support::Reply;
using test_support::RunToEnd;
using test_support::TestServer;
using Responses = std::vector<Result<HttpResponse>>;

HttpRequest Request(std::string method, std::string url, std::string body = {}) {
    HttpRequest request;
    request.method = std::move(method);
    request.url = std::move(url);
    request.body = std::move(body);
    return request;
}

// Replies in turn, the last one for every request after that.
test_support::Handler Script(std::vector<Reply> replies) {
    auto next = std::make_shared<std::atomic<std::size_t>>(0);
    return [replies = std::move(replies), next](const test_support::ReceivedRequest&) {
        const std::size_t index = next->fetch_add(1);
        return replies[std::min(index, replies.size() - 1)];
    };
}

asio::awaitable<Responses> SendAll(HttpClient& client, std::vector<HttpRequest> requests) {
    Responses responses;
    for (auto& request : requests) responses.push_back(co_await client.Send(std::move(request)));
    co_return responses;
}

class HttpClientTest : public ::testing::Test {
protected:
    HttpClientOptions Options() {
        HttpClientOptions options;
        options.connect_timeout = std::chrono::seconds(10);
        options.request_timeout = std::chrono::seconds(10);
        return options;
    }

    asio::io_context io_;
    ssl::context tls_{ssl::context::tls_client};
};

TEST_F(HttpClientTest, ReturnsStatusHeadersAndBody) {
    Reply reply = Reply::Json("{\"ok\":true}", 201);
    reply.headers.emplace_back("X-Trace", "abc");
    TestServer server(io_, Script({reply}));
    HttpClient client(io_.get_executor(), tls_, Options());

    HttpRequest request = Request("GET", server.Url("/fhir/Patient/1?_elements=id"));
    request.headers = {{"Accept", "application/fhir+json"}};
    auto responses = RunToEnd(io_, {&server}, SendAll(client, {request}));

    ASSERT_TRUE(responses[0].has_value()) << responses[0].error().message();
    EXPECT_EQ(responses[0]->status, 201u);
    EXPECT_EQ(responses[0]->body, "{\"ok\":true}");
    EXPECT_EQ(responses[0]->Header("x-trace"), "abc");
    EXPECT_EQ(responses[0]->Header("content-type"), "application/fhir+json");
    auto received = server.requests();
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0].method, "GET");
    EXPECT_EQ(received[0].target, "/fhir/Patient/1?_elements=id");
    EXPECT_EQ(received[0].Header("host"), "127.0.0.1:" + std::to_string(server.port()));
    EXPECT_EQ(received[0].Header("accept"), "application/fhir+json");
}

TEST_F(HttpClientTest, PostSendsBodyWithItsLength) {
    TestServer server(io_, Script({Reply::Json("{}")}));
    HttpClient client(io_.get_executor(), tls_, Options());

    HttpRequest request = Request("POST", server.Url("/fhir"), "{\"resourceType\":\"Bundle\"}");
    request.headers = {{"Content-Type", "application/fhir+json"}};
    auto responses = RunToEnd(io_, {&server}, SendAll(client, {request}));

    ASSERT_TRUE(responses[0].has_value());
    auto received = server.requests();
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0].method, "POST");
    EXPECT_EQ(received[0].body, "{\"resourceType\":\"Bundle\"}");
    EXPECT_EQ(received[0].Header("content-length"), "25");
    EXPECT_EQ(received[0].Header("content-type"), "application/fhir+json");
}

TEST_F(HttpClientTest, ReusesKeepAliveConnection) {
    TestServer server(io_, Script({Reply::Json("{}")}));
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(
        io_, {&server},
        SendAll(client, {Request("GET", server.Url("/a")), Request("POST", server.Url("/b"), "x"),
                         Request("GET", server.Url("/c"))}));

    for (const auto& response : responses) ASSERT_TRUE(response.has_value());
    EXPECT_EQ(server.connections(), 1u);
    EXPECT_EQ(server.request_count(), 3u);
}

TEST_F(HttpClientTest, ConnectionCloseFromServerIsNotReused) {
    Reply reply = Reply::Json("{}");
    reply.connection_close = true;
    TestServer server(io_, Script({reply}));
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(
        io_, {&server},
        SendAll(client, {Request("GET", server.Url("/a")), Request("GET", server.Url("/b"))}));

    for (const auto& response : responses) ASSERT_TRUE(response.has_value());
    EXPECT_EQ(server.connections(), 2u);
}

TEST_F(HttpClientTest, ConnectionCloseFromCallerIsNotReused) {
    TestServer server(io_, Script({Reply::Json("{}")}));
    HttpClient client(io_.get_executor(), tls_, Options());

    HttpRequest closing = Request("GET", server.Url("/a"));
    closing.headers = {{"Connection", "close"}};
    auto responses =
        RunToEnd(io_, {&server}, SendAll(client, {closing, Request("GET", server.Url("/b"))}));

    for (const auto& response : responses) ASSERT_TRUE(response.has_value());
    EXPECT_EQ(server.connections(), 2u);
}

TEST_F(HttpClientTest, IdleConnectionClosedByServerIsDroppedBeforeUse) {
    // The server closes after answering, as an idle timeout would; even a POST, which is never
    // retried, must then go out on a new connection.
    TestServer server(io_, Script({Reply::Do(Reply::Action::kRespondThenClose)}));
    HttpClient client(io_.get_executor(), tls_, Options());

    auto body = [&]() -> asio::awaitable<Responses> {
        Responses responses;
        responses.push_back(co_await client.Send(Request("GET", server.Url("/a"))));
        co_await server.WaitForClosedConnections(1);
        responses.push_back(co_await client.Send(Request("POST", server.Url("/b"), "x")));
        co_return responses;
    };
    auto responses = RunToEnd(io_, {&server}, body());

    for (const auto& response : responses) ASSERT_TRUE(response.has_value());
    EXPECT_EQ(server.connections(), 2u);
    EXPECT_EQ(server.request_count(), 2u);
}

TEST_F(HttpClientTest, GetOnConnectionClosedUnderneathIsRetriedOnce) {
    TestServer server(
        io_, Script({Reply::Json("{\"n\":1}"), Reply::Do(Reply::Action::kCloseWithoutReply),
                     Reply::Json("{\"n\":2}")}));
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(
        io_, {&server},
        SendAll(client, {Request("GET", server.Url("/a")), Request("GET", server.Url("/b"))}));

    ASSERT_TRUE(responses[1].has_value()) << responses[1].error().message();
    EXPECT_EQ(responses[1]->body, "{\"n\":2}");
    auto received = server.requests();
    ASSERT_EQ(received.size(), 3u);
    EXPECT_EQ(received[1].connection, 1u);
    EXPECT_EQ(received[2].connection, 2u);
    EXPECT_EQ(received[2].target, "/b");
}

TEST_F(HttpClientTest, PostOnConnectionClosedUnderneathIsNotRetried) {
    TestServer server(io_, Script({Reply::Json("{}"), Reply::Do(Reply::Action::kCloseWithoutReply),
                                   Reply::Json("{}")}));
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(io_, {&server},
                              SendAll(client, {Request("GET", server.Url("/a")),
                                               Request("POST", server.Url("/b"), "{}")}));

    ASSERT_FALSE(responses[1].has_value());
    EXPECT_EQ(responses[1].error(), Error::kConnectionFailed);
    EXPECT_EQ(server.request_count(), 2u);
    EXPECT_EQ(server.connections(), 1u);
}

TEST_F(HttpClientTest, FailureOnFreshConnectionIsNotRetried) {
    TestServer server(io_,
                      Script({Reply::Do(Reply::Action::kCloseWithoutReply), Reply::Json("{}")}));
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(io_, {&server}, SendAll(client, {Request("GET", server.Url("/a"))}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kConnectionFailed);
    EXPECT_EQ(server.request_count(), 1u);
}

TEST_F(HttpClientTest, StalledServerTimesOutAndConnectionIsDiscarded) {
    TestServer server(io_, Script({Reply::Do(Reply::Action::kStall), Reply::Json("{}")}));
    HttpClientOptions options = Options();
    options.request_timeout = std::chrono::milliseconds(200);
    HttpClient client(io_.get_executor(), tls_, options);

    auto responses = RunToEnd(
        io_, {&server},
        SendAll(client, {Request("GET", server.Url("/a")), Request("GET", server.Url("/b"))}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kTimeout);
    ASSERT_TRUE(responses[1].has_value());
    EXPECT_EQ(server.connections(), 2u);
}

TEST_F(HttpClientTest, ResetIsConnectionFailed) {
    TestServer server(io_, Script({Reply::Do(Reply::Action::kReset)}));
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(io_, {&server}, SendAll(client, {Request("GET", server.Url("/a"))}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kConnectionFailed);
}

TEST_F(HttpClientTest, RefusedConnectionIsConnectionFailed) {
    // A port that was just free and nobody listens on.
    std::uint16_t port = 0;
    {
        asio::ip::tcp::acceptor probe(io_, {asio::ip::make_address("127.0.0.1"), 0});
        port = probe.local_endpoint().port();
    }
    HttpClient client(io_.get_executor(), tls_, Options());

    const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
    auto responses = RunToEnd(io_, {}, SendAll(client, {Request("GET", url)}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kConnectionFailed);
}

TEST_F(HttpClientTest, BodyOverLimitIsTooLargeAndConnectionIsDiscarded) {
    Reply huge = Reply::Json(std::string(256 * 1024, 'x'));
    TestServer server(io_, Script({huge, Reply::Json("{}")}));
    HttpClientOptions options = Options();
    options.max_response_bytes = 16 * 1024;
    HttpClient client(io_.get_executor(), tls_, options);

    auto responses = RunToEnd(
        io_, {&server},
        SendAll(client, {Request("GET", server.Url("/a")), Request("GET", server.Url("/b"))}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kResponseTooLarge);
    ASSERT_TRUE(responses[1].has_value());
    EXPECT_EQ(server.connections(), 2u);
}

TEST_F(HttpClientTest, ChunkedBodyOverLimitIsTooLarge) {
    Reply huge = Reply::Json(std::string(256 * 1024, 'x'));
    huge.chunked = true;
    TestServer server(io_, Script({huge}));
    HttpClientOptions options = Options();
    options.max_response_bytes = 16 * 1024;
    HttpClient client(io_.get_executor(), tls_, options);

    auto responses = RunToEnd(io_, {&server}, SendAll(client, {Request("GET", server.Url("/a"))}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kResponseTooLarge);
}

TEST_F(HttpClientTest, BodyAtLimitIsAccepted) {
    Reply chunked = Reply::Json(std::string(16 * 1024, 'y'));
    chunked.chunked = true;
    TestServer server(io_, Script({Reply::Json(std::string(16 * 1024, 'x')), chunked}));
    HttpClientOptions options = Options();
    options.max_response_bytes = 16 * 1024;
    HttpClient client(io_.get_executor(), tls_, options);

    auto responses = RunToEnd(
        io_, {&server},
        SendAll(client, {Request("GET", server.Url("/a")), Request("GET", server.Url("/b"))}));

    ASSERT_TRUE(responses[0].has_value());
    EXPECT_EQ(responses[0]->body.size(), 16u * 1024);
    ASSERT_TRUE(responses[1].has_value());
    EXPECT_EQ(responses[1]->body.size(), 16u * 1024);
}

TEST_F(HttpClientTest, GarbageIsBadResponse) {
    Reply garbage = Reply::Do(Reply::Action::kRaw);
    garbage.body = "HELLO THERE\r\n\r\n";
    TestServer server(io_, Script({garbage}));
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(io_, {&server}, SendAll(client, {Request("GET", server.Url("/a"))}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kBadResponse);
}

TEST_F(HttpClientTest, InterimResponseIsSkipped) {
    Reply raw = Reply::Do(Reply::Action::kRaw);
    raw.body =
        "HTTP/1.1 100 Continue\r\n\r\n"
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    TestServer server(io_, Script({raw}));
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(io_, {&server}, SendAll(client, {Request("GET", server.Url("/a"))}));

    ASSERT_TRUE(responses[0].has_value()) << responses[0].error().message();
    EXPECT_EQ(responses[0]->status, 200u);
    EXPECT_EQ(responses[0]->body, "ok");
}

TEST_F(HttpClientTest, UnusableUrlIsInvalidConfig) {
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses =
        RunToEnd(io_, {},
                 SendAll(client, {Request("GET", "ftp://127.0.0.1/x"), Request("GET", "not a url"),
                                  Request("GET", "/relative/path")}));

    for (const auto& response : responses) {
        ASSERT_FALSE(response.has_value());
        EXPECT_EQ(response.error(), Error::kInvalidConfig);
    }
}

TEST_F(HttpClientTest, HeaderThatCouldSplitTheRequestIsRefused) {
    TestServer server(io_, Script({Reply::Json("{}")}));
    HttpClient client(io_.get_executor(), tls_, Options());

    HttpRequest injected = Request("GET", server.Url("/a"));
    injected.headers = {{"Authorization", "Bearer x\r\nX-Evil: 1"}};
    HttpRequest bad_name = Request("GET", server.Url("/a"));
    bad_name.headers = {{"X Evil", "1"}};
    auto responses = RunToEnd(
        io_, {&server}, SendAll(client, {injected, bad_name, Request("GET /x", server.Url())}));

    for (const auto& response : responses) {
        ASSERT_FALSE(response.has_value());
        EXPECT_EQ(response.error(), Error::kInvalidConfig);
    }
    EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(HttpClientTest, IdleConnectionsAreCappedPerHost) {
    TestServer server(io_, Script({Reply::Json("{}")}));
    HttpClientOptions options = Options();
    options.max_idle_per_host = 1;
    HttpClient client(io_.get_executor(), tls_, options);

    // Two at once need two connections; only one of them is kept, so the next pair needs one
    // new connection.
    auto body = [&]() -> asio::awaitable<Responses> {
        Responses responses;
        for (int round = 0; round < 2; ++round) {
            auto [a, b] = co_await (client.Send(Request("GET", server.Url("/a"))) &&
                                    client.Send(Request("GET", server.Url("/b"))));
            responses.push_back(std::move(a));
            responses.push_back(std::move(b));
        }
        co_return responses;
    };
    auto responses = RunToEnd(io_, {&server}, body());

    for (const auto& response : responses) ASSERT_TRUE(response.has_value());
    EXPECT_EQ(server.connections(), 3u);
}

TEST(HttpClientThreads, ConcurrentRequestsFromSeveralThreads) {
    asio::io_context io;
    ssl::context tls(ssl::context::tls_client);
    TestServer server(io, Script({Reply::Json("{}")}));
    HttpClientOptions options;
    options.max_idle_per_host = 4;
    HttpClient client(io.get_executor(), tls, options);

    constexpr int kRequests = 32;
    std::atomic<int> remaining = kRequests;
    std::atomic<int> succeeded = 0;
    for (int i = 0; i < kRequests; ++i) {
        asio::co_spawn(
            io,
            [&client, &server, i]() -> asio::awaitable<bool> {
                auto response =
                    co_await client.Send(Request("GET", server.Url("/n/" + std::to_string(i))));
                co_return response.has_value() && response->status == 200;
            },
            [&](std::exception_ptr error, bool ok) {
                if (!error && ok) ++succeeded;
                if (--remaining == 0) server.Stop();
            });
    }
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([&io] { io.run(); });
    for (auto& thread : threads) thread.join();

    EXPECT_EQ(succeeded.load(), kRequests);
    EXPECT_EQ(server.request_count(), static_cast<std::size_t>(kRequests));
    EXPECT_LE(server.connections(), static_cast<std::size_t>(kRequests));
}

class HttpsClientTest : public HttpClientTest {
protected:
    void SetUpServer(const std::string& subject_alt_names) {
        certificates_ = test_support::MakeCertificates(subject_alt_names);
        test_support::UseServerCertificate(server_tls_.native_handle(), certificates_);
        tls_.set_verify_mode(ssl::verify_peer);
    }
    void TrustServerCa() { test_support::TrustCa(tls_.native_handle(), certificates_.ca_pem); }

    ssl::context server_tls_{ssl::context::tls_server};
    test_support::Certificates certificates_;
};

TEST_F(HttpsClientTest, TrustedCaAndMatchingNameSucceedWithSni) {
    SetUpServer("DNS:localhost,IP:127.0.0.1");
    TrustServerCa();
    TestServer server(io_, Script({Reply::Json("{}")}), &server_tls_);
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses =
        RunToEnd(io_, {&server},
                 SendAll(client, {Request("GET", server.UrlWithHost("localhost", "/a")),
                                  Request("GET", server.UrlWithHost("localhost", "/b"))}));

    for (const auto& response : responses) {
        ASSERT_TRUE(response.has_value()) << response.error().message();
    }
    auto received = server.requests();
    ASSERT_EQ(received.size(), 2u);
    EXPECT_EQ(received[0].sni, "localhost");
    EXPECT_EQ(server.connections(), 1u);
}

TEST_F(HttpsClientTest, IpAddressIsVerifiedAgainstIpSan) {
    SetUpServer("DNS:localhost,IP:127.0.0.1");
    TrustServerCa();
    TestServer server(io_, Script({Reply::Json("{}")}), &server_tls_);
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(io_, {&server}, SendAll(client, {Request("GET", server.Url("/a"))}));

    ASSERT_TRUE(responses[0].has_value()) << responses[0].error().message();
    // SNI carries names only.
    EXPECT_EQ(server.requests().at(0).sni, "");
}

TEST_F(HttpsClientTest, UntrustedCaFails) {
    SetUpServer("DNS:localhost,IP:127.0.0.1");
    TestServer server(io_, Script({Reply::Json("{}")}), &server_tls_);
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(io_, {&server}, SendAll(client, {Request("GET", server.Url("/a"))}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kTlsFailed);
    EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(HttpsClientTest, WrongHostNameFails) {
    SetUpServer("DNS:ehr.example.org");
    TrustServerCa();
    TestServer server(io_, Script({Reply::Json("{}")}), &server_tls_);
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses =
        RunToEnd(io_, {&server},
                 SendAll(client, {Request("GET", server.Url("/a")),
                                  Request("GET", server.UrlWithHost("localhost", "/a"))}));

    for (const auto& response : responses) {
        ASSERT_FALSE(response.has_value());
        EXPECT_EQ(response.error(), Error::kTlsFailed);
    }
    EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(HttpsClientTest, GetOnConnectionClosedUnderneathIsRetriedOnce) {
    SetUpServer("IP:127.0.0.1");
    TrustServerCa();
    TestServer server(io_,
                      Script({Reply::Json("{}"), Reply::Do(Reply::Action::kCloseWithoutReply),
                              Reply::Json("{\"n\":2}")}),
                      &server_tls_);
    HttpClient client(io_.get_executor(), tls_, Options());

    auto responses = RunToEnd(
        io_, {&server},
        SendAll(client, {Request("GET", server.Url("/a")), Request("GET", server.Url("/b"))}));

    ASSERT_TRUE(responses[1].has_value()) << responses[1].error().message();
    EXPECT_EQ(responses[1]->body, "{\"n\":2}");
    EXPECT_EQ(server.connections(), 2u);
}

TEST_F(HttpsClientTest, HandshakeThatNeverCompletesTimesOut) {
    // The kernel completes TCP connections into the backlog of a socket that listens but never
    // accepts: the TLS handshake then waits for an answer that never comes.
    asio::ip::tcp::acceptor silent(io_, {asio::ip::make_address("127.0.0.1"), 0});
    const std::string url = "https://127.0.0.1:" + std::to_string(silent.local_endpoint().port());
    tls_.set_verify_mode(ssl::verify_peer);
    HttpClientOptions options = Options();
    options.connect_timeout = std::chrono::milliseconds(200);
    HttpClient client(io_.get_executor(), tls_, options);

    auto responses = RunToEnd(io_, {}, SendAll(client, {Request("GET", url + "/a")}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kTimeout);
}

TEST_F(HttpsClientTest, StalledServerTimesOut) {
    SetUpServer("IP:127.0.0.1");
    TrustServerCa();
    TestServer server(io_, Script({Reply::Do(Reply::Action::kStall)}), &server_tls_);
    HttpClientOptions options = Options();
    options.request_timeout = std::chrono::milliseconds(200);
    HttpClient client(io_.get_executor(), tls_, options);

    auto responses = RunToEnd(io_, {&server}, SendAll(client, {Request("GET", server.Url("/a"))}));

    ASSERT_FALSE(responses[0].has_value());
    EXPECT_EQ(responses[0].error(), Error::kTimeout);
}

}  // namespace
}  // namespace microcare::adapter
