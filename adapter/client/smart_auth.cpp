#include "adapter/client/smart_auth.hpp"

#include <openssl/rand.h>

#include <algorithm>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <cctype>
#include <exception>
#include <vector>

#include "adapter/client/jwt.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace urls = boost::urls;

// SMART Backend Services: the assertion "SHALL be no more than five minutes in the future".
constexpr std::chrono::minutes kAssertionLifetime{5};
constexpr std::string_view kAssertionType =
    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

std::int64_t EpochSeconds(std::chrono::system_clock::time_point at) {
    return std::chrono::duration_cast<std::chrono::seconds>(at.time_since_epoch()).count();
}

std::optional<std::string> RandomHex(std::size_t bytes) {
    std::vector<unsigned char> random(bytes);
    if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) return std::nullopt;
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(2 * bytes);
    for (unsigned char b : random) {
        hex += kDigits[b >> 4];
        hex += kDigits[b & 15];
    }
    return hex;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::tolower(static_cast<unsigned char>(a[i])) !=
            std::tolower(static_cast<unsigned char>(b[i]))) {
            return false;
        }
    }
    return true;
}

// The token goes into a header as it is; RFC 6750 allows a subset of visible ASCII.
bool IsVisibleAscii(std::string_view text) {
    return !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
        return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
    });
}

void AppendFormField(std::string& form, std::string_view name, std::string_view value) {
    if (!form.empty()) form += '&';
    form += urls::encode(name, urls::unreserved_chars);
    form += '=';
    form += urls::encode(value, urls::unreserved_chars);
}

bool IsHttpUrl(std::string_view url) {
    auto parsed = urls::parse_absolute_uri(url);
    return parsed && (parsed->scheme_id() == urls::scheme::https ||
                      parsed->scheme_id() == urls::scheme::http);
}

}  // namespace

// One token request and everyone waiting for it. Waiters may sit on any executor: each is
// resumed by a post to its own.
struct AuthProvider::Refresh {
    std::mutex mutex;
    bool done = false;
    Result<std::string> header{Error::kAuthFailed};
    std::vector<std::function<void()>> waiters;

    template <typename CompletionToken>
    auto Wait(CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void()>(
            [this](auto handler) {
                auto executor = asio::get_associated_executor(handler);
                // std::function wants a copyable callable; the coroutine's handler is move-only.
                auto shared = std::make_shared<decltype(handler)>(std::move(handler));
                auto resume = [executor, shared] { asio::post(executor, std::move(*shared)); };
                std::unique_lock lock(mutex);
                if (done) {
                    lock.unlock();
                    resume();
                    return;
                }
                waiters.emplace_back(std::move(resume));
            },
            token);
    }

    void Complete(Result<std::string> result) {
        std::vector<std::function<void()>> resume;
        {
            std::lock_guard lock(mutex);
            header = std::move(result);
            done = true;
            resume.swap(waiters);
        }
        for (auto& waiter : resume) waiter();
    }
};

AuthProvider::AuthProvider(HttpClient& http, std::string fhir_base_url, AuthSettings settings,
                           Clock clock)
    : http_(http),
      base_url_(std::move(fhir_base_url)),
      settings_(std::move(settings)),
      clock_(std::move(clock)) {
    while (!base_url_.empty() && base_url_.back() == '/') base_url_.pop_back();
}

AuthProvider::~AuthProvider() = default;

std::chrono::system_clock::time_point AuthProvider::Now() const {
    return clock_ ? clock_() : std::chrono::system_clock::now();
}

asio::awaitable<Result<std::string>> AuthProvider::AuthorizationHeader() {
    switch (settings_.kind) {
        case AuthSettings::Kind::kNone:
            co_return std::string();
        case AuthSettings::Kind::kBearer:
            if (settings_.bearer_token.empty()) co_return Error::kAuthFailed;
            co_return "Bearer " + settings_.bearer_token;
        case AuthSettings::Kind::kSmartBackend:
            break;
    }

    std::shared_ptr<Refresh> refresh;
    bool leader = false;
    {
        std::lock_guard lock(mutex_);
        if (!cached_token_.empty() && Now() < expires_at_) {
            std::string header = "Bearer " + cached_token_;
            co_return header;
        }
        if (!refresh_) {
            refresh_ = std::make_shared<Refresh>();
            leader = true;
        }
        refresh = refresh_;
    }

    if (!leader) {
        co_await refresh->Wait(asio::use_awaitable);
        co_return refresh->header;
    }

    Result<AccessToken> token = Error::kAuthFailed;
    try {
        token = co_await RequestToken();
    } catch (...) {
        // Waiters must not hang on a leader that died; they get the error, the leader rethrows.
        Finish(*refresh, Error::kAuthFailed);
        throw;
    }
    Finish(*refresh, token);
    if (!token) co_return token.error();
    co_return "Bearer " + token->value;
}

void AuthProvider::Finish(Refresh& refresh, const Result<AccessToken>& token) {
    {
        std::lock_guard lock(mutex_);
        if (token) {
            cached_token_ = token->value;
            // A token without a lifetime is used for the requests waiting now and not cached.
            // A short-lived one is renewed halfway rather than never cached at all.
            const auto now = Now();
            if (token->expires_in) {
                const auto margin = std::min<std::chrono::seconds>(settings_.refresh_margin,
                                                                   *token->expires_in / 2);
                expires_at_ = now + *token->expires_in - margin;
            } else {
                expires_at_ = now;
            }
        }
        refresh_.reset();
    }
    refresh.Complete(token ? Result<std::string>("Bearer " + token->value)
                           : Result<std::string>(token.error()));
}

void AuthProvider::Invalidate() {
    std::lock_guard lock(mutex_);
    cached_token_.clear();
    expires_at_ = {};
}

asio::awaitable<Result<std::string>> AuthProvider::TokenEndpoint() {
    if (!settings_.token_endpoint.empty()) co_return settings_.token_endpoint;
    {
        std::lock_guard lock(mutex_);
        if (!discovered_token_endpoint_.empty()) {
            std::string endpoint = discovered_token_endpoint_;
            co_return endpoint;
        }
    }

    HttpRequest request;
    request.method = "GET";
    request.url = base_url_ + "/.well-known/smart-configuration";
    request.headers = {{"Accept", "application/json"}};
    auto response = co_await http_.Send(std::move(request));
    if (!response) co_return response.error();
    if (response->status / 100 != 2) co_return Error::kAuthFailed;

    fhir::IssueList issues;
    auto document = fhir::JsonDocument::Parse(response->body, issues);
    if (!document) co_return Error::kAuthFailed;
    const fhir::Node endpoint = document->Root()["token_endpoint"];
    if (!endpoint.IsString() || !IsHttpUrl(endpoint.String())) co_return Error::kAuthFailed;

    std::string discovered(endpoint.String());
    {
        std::lock_guard lock(mutex_);
        discovered_token_endpoint_ = discovered;
    }
    co_return discovered;
}

asio::awaitable<Result<AuthProvider::AccessToken>> AuthProvider::RequestToken() {
    auto endpoint = co_await TokenEndpoint();
    if (!endpoint) co_return endpoint.error();
    auto assertion = MakeClientAssertion(*endpoint, Now());
    if (!assertion) co_return assertion.error();

    HttpRequest request;
    request.method = "POST";
    request.url = *endpoint;
    request.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                       {"Accept", "application/json"}};
    AppendFormField(request.body, "grant_type", "client_credentials");
    AppendFormField(request.body, "scope", settings_.scope);
    AppendFormField(request.body, "client_assertion_type", kAssertionType);
    AppendFormField(request.body, "client_assertion", *assertion);

    // Transport errors pass through as they are: they are worth a retry, a refusal is not.
    auto response = co_await http_.Send(std::move(request));
    if (!response) co_return response.error();
    if (response->status / 100 != 2) co_return Error::kAuthFailed;

    fhir::IssueList issues;
    auto document = fhir::JsonDocument::Parse(response->body, issues);
    if (!document) co_return Error::kAuthFailed;
    const fhir::Node root = document->Root();
    const fhir::Node access_token = root["access_token"];
    if (!access_token.IsString() || !IsVisibleAscii(access_token.String())) {
        co_return Error::kAuthFailed;
    }
    const fhir::Node token_type = root["token_type"];
    if (token_type.Exists() &&
        (!token_type.IsString() || !EqualsIgnoreCase(token_type.String(), "bearer"))) {
        co_return Error::kAuthFailed;
    }
    AccessToken token;
    token.value = std::string(access_token.String());
    const fhir::Node expires_in = root["expires_in"];
    if (expires_in.Exists()) {
        const auto seconds = expires_in.Number();
        if (!seconds || *seconds <= 0) co_return Error::kAuthFailed;
        token.expires_in = std::chrono::seconds(static_cast<std::int64_t>(*seconds));
    }
    co_return token;
}

Result<std::string> AuthProvider::MakeClientAssertion(
    const std::string& audience, std::chrono::system_clock::time_point now) const {
    auto signer = JwtSigner::Load(settings_.private_key_pem, settings_.algorithm);
    if (!signer) return signer.error();
    auto jti = RandomHex(16);
    if (!jti) return Error::kAuthFailed;

    fhir::JsonWriter header;
    header.StartObject();
    header.Field("alg", settings_.algorithm);
    header.Field("typ", "JWT");
    if (!settings_.key_id.empty()) header.Field("kid", settings_.key_id);
    header.EndObject();

    fhir::JsonWriter claims;
    claims.StartObject();
    claims.Field("iss", settings_.client_id);
    claims.Field("sub", settings_.client_id);
    claims.Field("aud", audience);
    claims.Key("exp");
    claims.Int(EpochSeconds(now + kAssertionLifetime));
    claims.Key("iat");
    claims.Int(EpochSeconds(now));
    claims.Field("jti", *jti);
    claims.EndObject();

    return signer->Sign(header.View(), claims.View());
}

}  // namespace microcare::adapter
