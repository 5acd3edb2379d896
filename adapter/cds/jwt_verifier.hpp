#pragma once

#include <boost/asio/awaitable.hpp>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "adapter/cds/cds_settings.hpp"
#include "adapter/cds/jwks.hpp"
#include "adapter/clock.hpp"

namespace microcare::adapter {

// Why a CDS client's JWT was refused: one value per check, for the metric's label and the
// audit record (never the token).
enum class JwtRefusal {
    kMissing,     // no `Authorization: Bearer` JWT
    kMalformed,   // not three base64url parts of JSON objects
    kAlgorithm,   // alg none, HMAC or anything but RS384/ES384
    kIssuer,      // iss not configured
    kJku,         // jku not one of the issuer's configured URLs (never fetched)
    kUnknownKey,  // kid missing or not in the issuer's key set, even after a refresh
    kKeyType,     // the key does not fit alg
    kSignature,   // the signature does not verify
    kAudience,    // aud is not the service URL called
    kExpired,     // exp missing or past
    kLifetime,    // exp too far ahead
    kReplayed,    // jti missing or seen before
};
std::string_view ToString(JwtRefusal refusal);

// What a verified JWT says about its caller.
struct CdsClient {
    const CdsIssuer* issuer = nullptr;
    std::string jti;
    std::string subject;  // `sub`, the client id, if given
};

struct JwtCheck {
    std::optional<CdsClient> client;
    JwtRefusal refusal = JwtRefusal::kMissing;  // when !client
};

// Authenticates a CDS client per CDS Hooks 2.0, "Trusting CDS Clients": a JWS signed RS384 or
// ES384 by a key of a configured issuer (its inline set, its configured JWKS URLs, or a `jku`
// that is one of them), with `aud` the exact service URL, an `exp` no more than
// max_token_lifetime ahead, and a `jti` never used before within its lifetime. Thread-safe.
class JwtVerifier {
public:
    JwtVerifier(const CdsSettings& settings, JwksCache& keys, WallClock now);

    // `authorization` is the request's Authorization header; `audience` the URL called.
    boost::asio::awaitable<JwtCheck> Verify(std::string authorization, std::string audience);

private:
    const CdsIssuer* IssuerOf(std::string_view iss) const;
    bool FirstUse(const std::string& key, TimePoint expires);

    const CdsSettings& settings_;
    JwksCache& keys_;
    WallClock now_;
    std::mutex jti_mutex_;
    std::unordered_map<std::string, TimePoint> seen_;  // iss + jti -> when it may be forgotten
    std::multimap<TimePoint, std::string> expiries_;   // the same, by time
};

// Verifies a JWS signature over `signing_input` with SHA-384: PKCS#1 v1.5 for RSA keys, ECDSA
// for EC keys with JOSE's raw R || S signature.
bool VerifySha384(EVP_PKEY* key, std::string_view signing_input, std::string_view signature);

}  // namespace microcare::adapter
