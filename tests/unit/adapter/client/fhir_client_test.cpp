// The FHIR client against a fake EHR: URL joining, FHIR media types, the Authorization header
// and where it is (not) sent, the one retry after a 401 with a fresh token, and searches that
// follow `next` links, with their failure modes.
#include "adapter/client/fhir_client.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>
#include <set>

#include "test_pki.hpp"
#include "test_server.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using test_support::ReceivedRequest;
using test_support::Reply;
using test_support::RunToEnd;
using test_support::TestServer;
using Responses = std::vector<Result<HttpResponse>>;

std::string Resource(const std::string& id) {
    // A decimal with a trailing zero: re-serialising must not turn 1.50 into 1.5.
    return R"({"resourceType":"Observation","id":")" + id +
           R"(","status":"final","valueQuantity":{"value":1.50,"unit":"mg"}})";
}

std::string Page(const std::vector<std::string>& ids, const std::string& next) {
    std::string bundle = R"({"resourceType":"Bundle","type":"searchset","link":[)";
    bundle += R"({"relation":"self","url":"http://self.example/x"})";
    if (!next.empty()) bundle += R"(,{"relation":"next","url":")" + next + "\"}";
    bundle += R"(],"entry":[)";
    for (std::size_t i = 0; i < ids.size(); ++i) {
        if (i > 0) bundle += ',';
        bundle += R"({"fullUrl":"http://ehr.example/fhir/Observation/)" + ids[i] +
                  R"(","resource":)" + Resource(ids[i]) + R"(,"search":{"mode":"match"}})";
    }
    return bundle + "]}";
}

AuthSettings Bearer(std::string token) {
    AuthSettings settings;
    settings.kind = AuthSettings::Kind::kBearer;
    settings.bearer_token = std::move(token);
    return settings;
}

class FhirClientTest : public ::testing::Test {
protected:
    asio::io_context io_;
    ssl::context tls_{ssl::context::tls_client};
    HttpClient http_{io_.get_executor(), tls_};
};

TEST_F(FhirClientTest, GetJoinsBaseUrlAndSendsAcceptAndAuthorization) {
    TestServer server(io_, [](const ReceivedRequest&) { return Reply::Json(Resource("1")); });
    AuthProvider auth(http_, server.Url("/fhir/"), Bearer("secret"));
    FhirClient client(http_, auth, {server.Url("/fhir/")});

    auto body = [&]() -> asio::awaitable<Responses> {
        Responses responses;
        responses.push_back(co_await client.Get("Observation/1"));
        responses.push_back(co_await client.Get("/Observation/2"));
        responses.push_back(co_await client.Get(server.Url("/fhir/Observation/3")));
        co_return responses;
    };
    auto responses = RunToEnd(io_, {&server}, body());

    for (const auto& response : responses) ASSERT_TRUE(response.has_value());
    auto received = server.requests();
    ASSERT_EQ(received.size(), 3u);
    EXPECT_EQ(received[0].target, "/fhir/Observation/1");
    EXPECT_EQ(received[1].target, "/fhir/Observation/2");
    EXPECT_EQ(received[2].target, "/fhir/Observation/3");
    for (const auto& request : received) {
        EXPECT_EQ(request.Header("accept"), "application/fhir+json");
        EXPECT_EQ(request.Header("authorization"), "Bearer secret");
    }
    EXPECT_EQ(client.base_url(), server.Url("/fhir"));
}

TEST_F(FhirClientTest, PostSendsFhirJson) {
    TestServer server(io_, [](const ReceivedRequest&) { return Reply::Json("{}", 200); });
    AuthProvider auth(http_, server.Url("/fhir"), AuthSettings{});
    FhirClient client(http_, auth, {server.Url("/fhir")});

    auto body = [&]() -> asio::awaitable<Responses> {
        Responses responses;
        responses.push_back(co_await client.Post("", R"({"resourceType":"Bundle"})"));
        co_return responses;
    };
    auto responses = RunToEnd(io_, {&server}, body());

    ASSERT_TRUE(responses[0].has_value());
    auto received = server.requests();
    ASSERT_EQ(received.size(), 1u);
    EXPECT_EQ(received[0].method, "POST");
    EXPECT_EQ(received[0].target, "/fhir/");
    EXPECT_EQ(received[0].Header("content-type"), "application/fhir+json");
    EXPECT_EQ(received[0].body, R"({"resourceType":"Bundle"})");
    EXPECT_FALSE(received[0].Header("authorization").has_value());
}

TEST_F(FhirClientTest, TokenIsNotSentToAnotherOrigin) {
    TestServer ehr(io_, [](const ReceivedRequest&) { return Reply::Json("{}"); });
    TestServer elsewhere(io_, [](const ReceivedRequest&) { return Reply::Json("{}"); });
    AuthProvider auth(http_, ehr.Url("/fhir"), Bearer("secret"));
    FhirClient client(http_, auth, {ehr.Url("/fhir")});

    auto body = [&]() -> asio::awaitable<Responses> {
        Responses responses;
        responses.push_back(co_await client.Get(elsewhere.Url("/Binary/1")));
        co_return responses;
    };
    auto responses = RunToEnd(io_, {&ehr, &elsewhere}, body());

    ASSERT_TRUE(responses[0].has_value());
    auto received = elsewhere.requests();
    ASSERT_EQ(received.size(), 1u);
    EXPECT_FALSE(received[0].Header("authorization").has_value());
}

// Issue 7, item 2: the EHR's credentials went to any path of its host (`/admin/...`, and
// `/fhir/../admin/reset` sent without normalising); `file:` URLs became EHR paths.
TEST_F(FhirClientTest, CredentialsGoOnlyToTheBaseAndBelowAndUrlsGoOutNormalised) {
    TestServer ehr(io_, [](const ReceivedRequest&) { return Reply::Json("{}"); });
    AuthProvider auth(http_, ehr.Url("/fhir"), Bearer("secret"));
    FhirClient client(http_, auth, {ehr.Url("/fhir")});

    auto body = [&]() -> asio::awaitable<Responses> {
        Responses responses;
        responses.push_back(co_await client.Post(ehr.Url("/admin/reset"), "{}"));
        responses.push_back(co_await client.Post(ehr.Url("/fhir/../admin/reset"), "{}"));
        responses.push_back(co_await client.Post(ehr.Url("/fhirx/y"), "{}"));
        responses.push_back(co_await client.Post(ehr.Url("/fhir/./$process-message"), "{}"));
        responses.push_back(co_await client.Post("file:///etc/passwd", "{}"));
        responses.push_back(co_await client.Post("gopher://127.0.0.1/x", "{}"));
        co_return responses;
    };
    auto responses = RunToEnd(io_, {&ehr}, body());

    ASSERT_EQ(responses.size(), 6u);
    EXPECT_EQ(responses[4].error(), Error::kRefusedUrl);
    EXPECT_EQ(responses[5].error(), Error::kRefusedUrl);
    auto received = ehr.requests();
    ASSERT_EQ(received.size(), 4u);
    EXPECT_EQ(received[0].target, "/admin/reset");
    EXPECT_FALSE(received[0].Header("authorization").has_value());
    EXPECT_EQ(received[1].target, "/admin/reset");
    EXPECT_FALSE(received[1].Header("authorization").has_value());
    EXPECT_FALSE(received[2].Header("authorization").has_value());
    EXPECT_EQ(received[3].target, "/fhir/$process-message");
    EXPECT_EQ(received[3].Header("authorization").value_or(""), "Bearer secret");
}

// A fake EHR with a SMART token endpoint; its FHIR API refuses the tokens in `refused`.
test_support::Handler SmartEhr(std::set<std::string> refused) {
    auto issued = std::make_shared<std::atomic<int>>(0);
    return [issued, refused](const ReceivedRequest& request) {
        if (request.target == "/auth/token") {
            const int n = ++*issued;
            return Reply::Json(R"({"access_token":"tok)" + std::to_string(n) +
                               R"(","token_type":"bearer","expires_in":3600})");
        }
        const std::string authorization = request.Header("authorization").value_or("");
        if (refused.contains(authorization)) {
            return Reply::Json(R"({"resourceType":"OperationOutcome"})", 401);
        }
        return Reply::Json(Resource("1"));
    };
}

std::size_t Count(const TestServer& server, std::string_view target) {
    std::size_t count = 0;
    for (const auto& request : server.requests()) count += request.target == target;
    return count;
}

AuthSettings Smart(const TestServer& server) {
    AuthSettings settings;
    settings.kind = AuthSettings::Kind::kSmartBackend;
    settings.client_id = "microcare";
    settings.private_key_pem = test_support::GenerateEcKeyPem("P-384");
    settings.key_id = "k1";
    settings.algorithm = "ES384";
    settings.token_endpoint = server.Url("/auth/token");
    return settings;
}

TEST_F(FhirClientTest, Unauthorised401GetsOneRetryWithAFreshToken) {
    TestServer server(io_, SmartEhr({"Bearer tok1"}));
    AuthProvider auth(http_, server.Url("/fhir"), Smart(server));
    FhirClient client(http_, auth, {server.Url("/fhir")});

    auto body = [&]() -> asio::awaitable<Responses> {
        Responses responses;
        responses.push_back(co_await client.Post("Observation", Resource("1")));
        co_return responses;
    };
    auto responses = RunToEnd(io_, {&server}, body());

    ASSERT_TRUE(responses[0].has_value());
    EXPECT_EQ(responses[0]->status, 200u);
    EXPECT_EQ(Count(server, "/auth/token"), 2u);
    auto received = server.requests();
    ASSERT_EQ(received.size(), 4u);
    EXPECT_EQ(received[1].Header("authorization"), "Bearer tok1");
    EXPECT_EQ(received[3].Header("authorization"), "Bearer tok2");
    EXPECT_EQ(received[3].body, Resource("1"));
}

TEST_F(FhirClientTest, Second401IsReturnedNotRetried) {
    TestServer server(io_, SmartEhr({"Bearer tok1", "Bearer tok2", "Bearer tok3"}));
    AuthProvider auth(http_, server.Url("/fhir"), Smart(server));
    FhirClient client(http_, auth, {server.Url("/fhir")});

    auto body = [&]() -> asio::awaitable<Responses> {
        Responses responses;
        responses.push_back(co_await client.Get("Patient/1"));
        co_return responses;
    };
    auto responses = RunToEnd(io_, {&server}, body());

    ASSERT_TRUE(responses[0].has_value());
    EXPECT_EQ(responses[0]->status, 401u);
    EXPECT_EQ(Count(server, "/fhir/Patient/1"), 2u);
    EXPECT_EQ(Count(server, "/auth/token"), 2u);
}

// The search's first page is at kFirst; page n links to page n + 1 with an absolute URL made
// from the Host it was asked on, as servers do.
constexpr std::string_view kQuery = "Observation?patient=Patient/1";
constexpr std::string_view kFirst = "/fhir/Observation?patient=Patient/1";

std::string Origin(const ReceivedRequest& request) {
    return "http://" + request.Header("host").value_or("");
}

std::string PageTarget(int n) { return "/fhir?_getpages=s1&_page=" + std::to_string(n); }

int PageNumber(const ReceivedRequest& request) {
    if (request.target == kFirst) return 1;
    for (int n = 2; n < 10; ++n) {
        if (request.target == PageTarget(n)) return n;
    }
    return 0;
}

class SearchTest : public FhirClientTest {
protected:
    using Search = Result<SearchResult>;

    Search RunSearch(TestServer& server, std::size_t max_pages = 50) {
        AuthProvider auth(http_, server.Url("/fhir"), Bearer("secret"));
        FhirClient client(http_, auth, {server.Url("/fhir"), max_pages});
        auto body = [&]() -> asio::awaitable<Search> {
            co_return co_await client.SearchAll(std::string(kQuery));
        };
        return RunToEnd(io_, {&server}, body());
    }
};

// Three pages: a b | c d | e.
Reply ThreePages(const ReceivedRequest& request) {
    switch (PageNumber(request)) {
        case 1:
            return Reply::Json(Page({"a", "b"}, Origin(request) + PageTarget(2)));
        case 2:
            return Reply::Json(Page({"c", "d"}, Origin(request) + PageTarget(3)));
        case 3:
            return Reply::Json(Page({"e"}, ""));
        default:
            return Reply::Json("{}", 404);
    }
}

TEST_F(SearchTest, FollowsNextLinksAcrossThreePages) {
    TestServer server(io_, ThreePages);

    auto search = RunSearch(server);

    ASSERT_TRUE(search.has_value()) << search.error().message();
    EXPECT_EQ(search->page_count, 3u);
    EXPECT_FALSE(search->failure.has_value());
    const std::vector<std::string> expected = {Resource("a"), Resource("b"), Resource("c"),
                                               Resource("d"), Resource("e")};
    std::vector<std::string> got;
    for (fhir::Node resource : search->resources) got.push_back(fhir::Serialize(resource));
    EXPECT_EQ(got, expected);
    auto received = server.requests();
    ASSERT_EQ(received.size(), 3u);
    EXPECT_EQ(received[0].target, kFirst);
    EXPECT_EQ(received[1].target, PageTarget(2));
    EXPECT_EQ(received[2].target, PageTarget(3));
    for (const auto& request : received) {
        EXPECT_EQ(request.Header("authorization"), "Bearer secret");
    }
}

TEST_F(SearchTest, FailedPageIsReturnedWithWhatCameBefore) {
    TestServer server(io_, [](const ReceivedRequest& request) {
        if (PageNumber(request) == 2) {
            return Reply::Json(R"({"resourceType":"OperationOutcome","issue":[]})", 500);
        }
        return ThreePages(request);
    });

    auto search = RunSearch(server);

    ASSERT_TRUE(search.has_value());
    EXPECT_EQ(search->page_count, 1u);
    EXPECT_EQ(search->resources.size(), 2u);
    ASSERT_TRUE(search->failure.has_value());
    EXPECT_EQ(search->failure->status, 500u);
    EXPECT_NE(search->failure->body.find("OperationOutcome"), std::string::npos);
}

TEST_F(SearchTest, NextLinkLoopIsBadResponse) {
    TestServer server(io_, [](const ReceivedRequest& request) {
        if (PageNumber(request) == 2) {
            return Reply::Json(Page({"c"}, Origin(request) + std::string(kFirst)));
        }
        return ThreePages(request);
    });

    auto search = RunSearch(server);

    ASSERT_FALSE(search.has_value());
    EXPECT_EQ(search.error(), Error::kBadResponse);
    EXPECT_EQ(server.request_count(), 2u);
}

TEST_F(SearchTest, MorePagesThanAllowedIsTooLarge) {
    TestServer server(io_, ThreePages);

    auto search = RunSearch(server, 2);

    ASSERT_FALSE(search.has_value());
    EXPECT_EQ(search.error(), Error::kResponseTooLarge);
    EXPECT_EQ(server.request_count(), 2u);
}

TEST_F(SearchTest, NextLinkToAnotherOriginIsRefused) {
    TestServer server(io_, [](const ReceivedRequest&) {
        return Reply::Json(Page({"a"}, "http://127.0.0.1:1/fhir?_page=2"));
    });

    auto search = RunSearch(server);

    ASSERT_FALSE(search.has_value());
    EXPECT_EQ(search.error(), Error::kBadResponse);
    EXPECT_EQ(server.request_count(), 1u);
}

TEST_F(SearchTest, PageThatIsNoBundleIsBadResponse) {
    TestServer server(io_, [](const ReceivedRequest&) { return Reply::Json(Resource("a")); });

    auto search = RunSearch(server);

    ASSERT_FALSE(search.has_value());
    EXPECT_EQ(search.error(), Error::kBadResponse);
}

}  // namespace
}  // namespace microcare::adapter
