#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "adapter/client/http_client.hpp"
#include "adapter/error.hpp"

namespace microcare::adapter {

// Outbound authorisation to the EHR's FHIR server.
struct AuthSettings {
    enum class Kind { kNone, kBearer, kSmartBackend };
    Kind kind = Kind::kNone;
    std::string bearer_token;  // kBearer (from the environment or a file, never the config)
    // kSmartBackend (SMART Backend Services: client-credentials grant, private-key JWT)
    std::string client_id;
    std::string private_key_pem;      // RSA (RS384) or EC P-384 (ES384)
    std::string key_id;               // JWT "kid"
    std::string algorithm = "RS384";  // RS384 | ES384
    std::string scope =
        "system/*.read system/CarePlan.write system/DetectedIssue.write system/Task.write";
    std::string token_endpoint;  // empty: discovered from [base]/.well-known/smart-configuration
    std::chrono::seconds refresh_margin{60};  // renew this long before the token expires
};

// Supplies the Authorization header for requests to the EHR. SMART tokens are cached and shared
// until shortly before they expire; a 401 from the EHR should call Invalidate().
class AuthProvider {
public:
    // The wall clock that token lifetimes and assertion timestamps are measured against;
    // empty means std::chrono::system_clock (tests pass their own).
    using Clock = std::function<std::chrono::system_clock::time_point()>;

    AuthProvider(HttpClient& http, std::string fhir_base_url, AuthSettings settings,
                 Clock clock = {});
    ~AuthProvider();
    AuthProvider(const AuthProvider&) = delete;
    AuthProvider& operator=(const AuthProvider&) = delete;

    // "Bearer ..." or empty for kNone. Error::kAuthFailed when the token endpoint refuses.
    boost::asio::awaitable<Result<std::string>> AuthorizationHeader();
    void Invalidate();

    // The signed client assertion (exposed for tests): header.claims.signature, base64url.
    Result<std::string> MakeClientAssertion(const std::string& audience,
                                            std::chrono::system_clock::time_point now) const;

private:
    struct Refresh;
    struct AccessToken {
        std::string value;
        std::optional<std::chrono::seconds> expires_in;
    };

    std::chrono::system_clock::time_point Now() const;
    boost::asio::awaitable<Result<std::string>> TokenEndpoint();
    boost::asio::awaitable<Result<AccessToken>> RequestToken();
    void Finish(Refresh& refresh, const Result<AccessToken>& token);

    HttpClient& http_;
    std::string base_url_;
    AuthSettings settings_;
    std::mutex mutex_;
    std::string cached_token_;
    std::chrono::system_clock::time_point expires_at_{};
    std::string discovered_token_endpoint_;
    Clock clock_;
    // The token request in flight, if any: callers that find one wait for its answer instead
    // of asking the token endpoint again.
    std::shared_ptr<Refresh> refresh_;
};

}  // namespace microcare::adapter
