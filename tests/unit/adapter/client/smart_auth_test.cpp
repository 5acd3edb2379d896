// Outbound authorisation: static modes, the SMART Backend Services client assertion (claims and
// a signature checked with the public key), token requests, caching, expiry, discovery, sharing
// one refresh between concurrent callers, and refusals.
#include "adapter/client/smart_auth.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>

#include "adapter/client/jwt.hpp"
#include "fhir/json.hpp"
#include "test_pki.hpp"
#include "test_server.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using namespace asio::experimental::awaitable_operators;
using test_support::ReceivedRequest;
using test_support::Reply;
using test_support::RunToEnd;
using test_support::TestServer;
using Headers = std::vector<Result<std::string>>;
using TimePoint = std::chrono::system_clock::time_point;

constexpr std::string_view kAssertionType =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

std::string PercentDecode(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += text[i] == '+' ? ' ' : text[i];
        }
    }
    return out;
}

std::map<std::string, std::string> ParseForm(std::string_view body) {
    std::map<std::string, std::string> fields;
    while (!body.empty()) {
        const auto amp = body.find('&');
        const std::string_view pair = body.substr(0, amp);
        const auto eq = pair.find('=');
        fields[PercentDecode(pair.substr(0, eq))] =
            eq == std::string_view::npos ? "" : PercentDecode(pair.substr(eq + 1));
        if (amp == std::string_view::npos) break;
        body.remove_prefix(amp + 1);
    }
    return fields;
}

std::optional<fhir::JsonDocument> ParseJson(const std::string& text) {
    fhir::IssueList issues;
    return fhir::JsonDocument::Parse(text, issues);
}

struct JwtParts {
    fhir::JsonDocument header;
    fhir::JsonDocument claims;
};

std::optional<JwtParts> SplitJwt(const std::string& jwt) {
    const auto first = jwt.find('.');
    const auto second = jwt.find('.', first + 1);
    if (first == std::string::npos || second == std::string::npos) return std::nullopt;
    auto header = Base64UrlDecode(jwt.substr(0, first));
    auto claims = Base64UrlDecode(jwt.substr(first + 1, second - first - 1));
    if (!header || !claims) return std::nullopt;
    auto header_doc = ParseJson(*header);
    auto claims_doc = ParseJson(*claims);
    if (!header_doc || !claims_doc) return std::nullopt;
    return JwtParts{std::move(*header_doc), std::move(*claims_doc)};
}

bool IsHex(std::string_view text) {
    return text.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

class SmartAuthTest : public ::testing::Test {
protected:
    AuthSettings Smart(const std::string& key_pem, const std::string& algorithm) {
        AuthSettings settings;
        settings.kind = AuthSettings::Kind::kSmartBackend;
        settings.client_id = "microcare-client";
        settings.private_key_pem = key_pem;
        settings.key_id = "key-2026";
        settings.algorithm = algorithm;
        settings.scope = "system/*.read system/CarePlan.write";
        return settings;
    }

    // A token endpoint at /auth/token handing out tok1, tok2, ... valid for `expires_in`.
    test_support::Handler TokenServer(std::string expires_in = "3600") {
        auto issued = std::make_shared<std::atomic<int>>(0);
        return [issued, expires_in](const ReceivedRequest& request) {
            if (request.target != "/auth/token") return Reply::Json("{}", 404);
            const int n = ++*issued;
            return Reply::Json(R"({"access_token":"tok)" + std::to_string(n) +
                               R"(","token_type":"Bearer","expires_in":)" + expires_in + "}");
        };
    }

    static std::size_t TokenRequests(const TestServer& server) {
        std::size_t count = 0;
        for (const auto& request : server.requests()) count += request.target == "/auth/token";
        return count;
    }

    asio::io_context io_;
    ssl::context tls_{ssl::context::tls_client};
    HttpClient http_{io_.get_executor(), tls_};
    TimePoint now_ = TimePoint(std::chrono::seconds(1'800'000'000));
    AuthProvider::Clock clock_ = [this] { return now_; };
};

asio::awaitable<Headers> Headers1(AuthProvider& auth) {
    Headers headers;
    headers.push_back(co_await auth.AuthorizationHeader());
    co_return headers;
}

TEST_F(SmartAuthTest, NoneGivesNoHeaderAndBearerGivesTheToken) {
    AuthProvider none(http_, "http://127.0.0.1:1/fhir", AuthSettings{});
    AuthSettings bearer_settings;
    bearer_settings.kind = AuthSettings::Kind::kBearer;
    bearer_settings.bearer_token = "static-token";
    AuthProvider bearer(http_, "http://127.0.0.1:1/fhir", bearer_settings);

    auto body = [&]() -> asio::awaitable<Headers> {
        Headers headers;
        headers.push_back(co_await none.AuthorizationHeader());
        headers.push_back(co_await bearer.AuthorizationHeader());
        co_return headers;
    };
    auto headers = RunToEnd(io_, {}, body());

    ASSERT_TRUE(headers[0].has_value());
    EXPECT_EQ(*headers[0], "");
    ASSERT_TRUE(headers[1].has_value());
    EXPECT_EQ(*headers[1], "Bearer static-token");
}

void CheckAssertion(const std::string& key, const std::string& algorithm,
                    const AuthSettings& settings) {
    SCOPED_TRACE(algorithm);
    asio::io_context io;
    ssl::context tls(ssl::context::tls_client);
    HttpClient http(io.get_executor(), tls);
    AuthProvider auth(http, "https://ehr.example/fhir", settings);
    const TimePoint now{std::chrono::seconds(1'800'000'000)};
    const std::string audience = "https://ehr.example/auth/token";

    auto jwt = auth.MakeClientAssertion(audience, now);
    ASSERT_TRUE(jwt.has_value());
    EXPECT_TRUE(test_support::VerifyJws(*jwt, test_support::PublicKeyPem(key), algorithm));

    auto parts = SplitJwt(*jwt);
    ASSERT_TRUE(parts.has_value());
    const fhir::Node header = parts->header.Root();
    EXPECT_EQ(header["alg"].String(), algorithm);
    EXPECT_EQ(header["typ"].String(), "JWT");
    EXPECT_EQ(header["kid"].String(), "key-2026");
    const fhir::Node claims = parts->claims.Root();
    EXPECT_EQ(claims["iss"].String(), "microcare-client");
    EXPECT_EQ(claims["sub"].String(), "microcare-client");
    EXPECT_EQ(claims["aud"].String(), audience);
    EXPECT_EQ(claims["iat"].NumberText(), "1800000000");
    EXPECT_EQ(claims["exp"].NumberText(), "1800000300");
    EXPECT_EQ(claims["jti"].String().size(), 32u);
    EXPECT_TRUE(IsHex(claims["jti"].String()));

    auto again = auth.MakeClientAssertion(audience, now);
    ASSERT_TRUE(again.has_value());
    auto again_parts = SplitJwt(*again);
    ASSERT_TRUE(again_parts.has_value());
    EXPECT_NE(again_parts->claims.Root()["jti"].String(), claims["jti"].String());
}

TEST_F(SmartAuthTest, Rs384AssertionHasTheClaimsAndVerifies) {
    const std::string key = test_support::GenerateRsaKeyPem();
    CheckAssertion(key, "RS384", Smart(key, "RS384"));
}

TEST_F(SmartAuthTest, Es384AssertionHasTheClaimsAndVerifies) {
    const std::string key = test_support::GenerateEcKeyPem("P-384");
    CheckAssertion(key, "ES384", Smart(key, "ES384"));
}

TEST_F(SmartAuthTest, AssertionWithUnusableKeyIsAuthFailed) {
    AuthProvider auth(http_, "https://ehr.example/fhir",
                      Smart(test_support::GenerateRsaKeyPem(), "ES384"));
    auto jwt = auth.MakeClientAssertion("https://ehr.example/token", now_);
    ASSERT_FALSE(jwt.has_value());
    EXPECT_EQ(jwt.error(), Error::kAuthFailed);
}

TEST_F(SmartAuthTest, RequestsTokenWithSignedAssertionAndCachesIt) {
    const std::string key = test_support::GenerateEcKeyPem("P-384");
    TestServer server(io_, TokenServer());
    AuthSettings settings = Smart(key, "ES384");
    settings.token_endpoint = server.Url("/auth/token");
    AuthProvider auth(http_, server.Url("/fhir"), settings, clock_);

    auto body = [&]() -> asio::awaitable<Headers> {
        Headers headers;
        headers.push_back(co_await auth.AuthorizationHeader());
        now_ += std::chrono::minutes(30);
        headers.push_back(co_await auth.AuthorizationHeader());
        co_return headers;
    };
    auto headers = RunToEnd(io_, {&server}, body());

    ASSERT_TRUE(headers[0].has_value()) << headers[0].error().message();
    EXPECT_EQ(*headers[0], "Bearer tok1");
    ASSERT_TRUE(headers[1].has_value());
    EXPECT_EQ(*headers[1], "Bearer tok1");

    auto received = server.requests();
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0].method, "POST");
    EXPECT_EQ(received[0].Header("content-type"), "application/x-www-form-urlencoded");
    auto form = ParseForm(received[0].body);
    EXPECT_EQ(form["grant_type"], "client_credentials");
    EXPECT_EQ(form["scope"], "system/*.read system/CarePlan.write");
    EXPECT_EQ(form["client_assertion_type"], kAssertionType);
    EXPECT_TRUE(test_support::VerifyJws(form["client_assertion"], test_support::PublicKeyPem(key),
                                        "ES384"));
    auto parts = SplitJwt(form["client_assertion"]);
    ASSERT_TRUE(parts.has_value());
    EXPECT_EQ(parts->claims.Root()["aud"].String(), server.Url("/auth/token"));
}

TEST_F(SmartAuthTest, RefreshesShortlyBeforeExpiry) {
    const std::string key = test_support::GenerateRsaKeyPem();
    TestServer server(io_, TokenServer("3600"));
    AuthSettings settings = Smart(key, "RS384");
    settings.token_endpoint = server.Url("/auth/token");
    settings.refresh_margin = std::chrono::seconds(60);
    AuthProvider auth(http_, server.Url("/fhir"), settings, clock_);

    auto body = [&]() -> asio::awaitable<Headers> {
        Headers headers;
        headers.push_back(co_await auth.AuthorizationHeader());
        now_ += std::chrono::seconds(3600 - 60 - 1);
        headers.push_back(co_await auth.AuthorizationHeader());
        now_ += std::chrono::seconds(1);
        headers.push_back(co_await auth.AuthorizationHeader());
        co_return headers;
    };
    auto headers = RunToEnd(io_, {&server}, body());

    for (const auto& header : headers) ASSERT_TRUE(header.has_value());
    EXPECT_EQ(*headers[0], "Bearer tok1");
    EXPECT_EQ(*headers[1], "Bearer tok1");
    EXPECT_EQ(*headers[2], "Bearer tok2");
    EXPECT_EQ(TokenRequests(server), 2u);
}

TEST_F(SmartAuthTest, InvalidateForcesANewToken) {
    TestServer server(io_, TokenServer());
    AuthSettings settings = Smart(test_support::GenerateRsaKeyPem(), "RS384");
    settings.token_endpoint = server.Url("/auth/token");
    AuthProvider auth(http_, server.Url("/fhir"), settings, clock_);

    auto body = [&]() -> asio::awaitable<Headers> {
        Headers headers;
        headers.push_back(co_await auth.AuthorizationHeader());
        auth.Invalidate();
        headers.push_back(co_await auth.AuthorizationHeader());
        co_return headers;
    };
    auto headers = RunToEnd(io_, {&server}, body());

    ASSERT_TRUE(headers[1].has_value());
    EXPECT_EQ(*headers[1], "Bearer tok2");
    EXPECT_EQ(TokenRequests(server), 2u);
}

TEST_F(SmartAuthTest, DiscoversTokenEndpointOnce) {
    test_support::Handler tokens = TokenServer();
    std::string token_url;
    TestServer server(io_, [&](const ReceivedRequest& request) {
        if (request.target == "/fhir/.well-known/smart-configuration") {
            return Reply::Json(R"({"token_endpoint":")" + token_url +
                               R"(","grant_types_supported":["client_credentials"]})");
        }
        return tokens(request);
    });
    token_url = server.Url("/auth/token");
    AuthProvider auth(http_, server.Url("/fhir/"),
                      Smart(test_support::GenerateRsaKeyPem(), "RS384"), clock_);

    auto body = [&]() -> asio::awaitable<Headers> {
        Headers headers;
        headers.push_back(co_await auth.AuthorizationHeader());
        auth.Invalidate();
        headers.push_back(co_await auth.AuthorizationHeader());
        co_return headers;
    };
    auto headers = RunToEnd(io_, {&server}, body());

    ASSERT_TRUE(headers[0].has_value()) << headers[0].error().message();
    EXPECT_EQ(*headers[0], "Bearer tok1");
    ASSERT_TRUE(headers[1].has_value());
    EXPECT_EQ(*headers[1], "Bearer tok2");
    auto received = server.requests();
    ASSERT_EQ(received.size(), 3u);
    EXPECT_EQ(received[0].target, "/fhir/.well-known/smart-configuration");
    EXPECT_EQ(received[1].target, "/auth/token");
    EXPECT_EQ(received[2].target, "/auth/token");
    auto parts = SplitJwt(ParseForm(received[1].body)["client_assertion"]);
    ASSERT_TRUE(parts.has_value());
    EXPECT_EQ(parts->claims.Root()["aud"].String(), token_url);
}

TEST_F(SmartAuthTest, ConcurrentCallersShareOneTokenRequest) {
    TestServer server(io_, TokenServer());
    AuthSettings settings = Smart(test_support::GenerateEcKeyPem("P-384"), "ES384");
    settings.token_endpoint = server.Url("/auth/token");
    AuthProvider auth(http_, server.Url("/fhir"), settings, clock_);

    auto body = [&]() -> asio::awaitable<Headers> {
        auto [a, b, c] = co_await (auth.AuthorizationHeader() && auth.AuthorizationHeader() &&
                                   auth.AuthorizationHeader());
        co_return Headers{a, b, c};
    };
    auto headers = RunToEnd(io_, {&server}, body());

    for (const auto& header : headers) {
        ASSERT_TRUE(header.has_value());
        EXPECT_EQ(*header, "Bearer tok1");
    }
    EXPECT_EQ(TokenRequests(server), 1u);
}

TEST_F(SmartAuthTest, RefusalsAndMalformedAnswersAreAuthFailed) {
    const std::vector<Reply> answers = {
        Reply::Json(R"({"error":"invalid_client"})", 400),
        Reply::Json(R"({"error":"invalid_client"})", 401),
        Reply::Json("not json"),
        Reply::Json(R"({"token_type":"Bearer","expires_in":300})"),
        Reply::Json(R"({"access_token":"","token_type":"Bearer"})"),
        Reply::Json(R"({"access_token":"x","token_type":"MAC"})"),
        Reply::Json(R"({"access_token":"x\r\nX-Evil: 1","token_type":"Bearer"})"),
        Reply::Json(R"({"access_token":"x","token_type":"Bearer","expires_in":"soon"})"),
    };
    for (std::size_t i = 0; i < answers.size(); ++i) {
        SCOPED_TRACE(i);
        asio::io_context io;
        ssl::context tls(ssl::context::tls_client);
        HttpClient http(io.get_executor(), tls);
        TestServer server(io, [&](const ReceivedRequest&) { return answers[i]; });
        AuthSettings settings = Smart(test_support::GenerateEcKeyPem("P-384"), "ES384");
        settings.token_endpoint = server.Url("/auth/token");
        AuthProvider auth(http, server.Url("/fhir"), settings, clock_);

        auto headers = RunToEnd(io, {&server}, Headers1(auth));

        ASSERT_FALSE(headers[0].has_value());
        EXPECT_EQ(headers[0].error(), Error::kAuthFailed);
    }
}

TEST_F(SmartAuthTest, FailedDiscoveryIsAuthFailed) {
    TestServer server(io_, [](const ReceivedRequest&) { return Reply::Json("{}", 404); });
    AuthProvider auth(http_, server.Url("/fhir"), Smart(test_support::GenerateRsaKeyPem(), "RS384"),
                      clock_);

    auto headers = RunToEnd(io_, {&server}, Headers1(auth));

    ASSERT_FALSE(headers[0].has_value());
    EXPECT_EQ(headers[0].error(), Error::kAuthFailed);
}

TEST_F(SmartAuthTest, UnreachableTokenEndpointKeepsTheTransportError) {
    TestServer server(io_, [](const ReceivedRequest&) { return Reply::Do(Reply::Action::kReset); });
    AuthSettings settings = Smart(test_support::GenerateRsaKeyPem(), "RS384");
    settings.token_endpoint = server.Url("/auth/token");
    AuthProvider auth(http_, server.Url("/fhir"), settings, clock_);

    auto headers = RunToEnd(io_, {&server}, Headers1(auth));

    ASSERT_FALSE(headers[0].has_value());
    EXPECT_EQ(headers[0].error(), Error::kConnectionFailed);
}

}  // namespace
}  // namespace microcare::adapter
