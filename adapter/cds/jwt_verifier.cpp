#include "adapter/cds/jwt_verifier.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cmath>

#include "adapter/client/jwt.hpp"
#include "adapter/client/outbound_url.hpp"
#include "adapter/server/request_text.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

JwtCheck Refuse(JwtRefusal why) { return JwtCheck{std::nullopt, why}; }

std::optional<fhir::JsonDocument> JsonObjectOf(std::string_view part) {
    auto text = Base64UrlDecode(part);
    if (!text) return std::nullopt;
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(*text, issues);
    if (!doc || !doc->Root().IsObject()) return std::nullopt;
    return doc;
}

bool AudienceIs(fhir::Node aud, std::string_view expected) {
    if (aud.IsString()) return aud.String() == expected;
    if (!aud.IsArray() || aud.Size() == 0) return false;
    for (std::size_t i = 0; i < aud.Size(); ++i) {
        if (aud[i].String() == expected) return true;
    }
    return false;
}

}  // namespace

std::string_view ToString(JwtRefusal refusal) {
    switch (refusal) {
        case JwtRefusal::kMissing:
            return "missing";
        case JwtRefusal::kMalformed:
            return "malformed";
        case JwtRefusal::kAlgorithm:
            return "algorithm";
        case JwtRefusal::kIssuer:
            return "issuer";
        case JwtRefusal::kJku:
            return "jku";
        case JwtRefusal::kUnknownKey:
            return "unknown-key";
        case JwtRefusal::kKeyType:
            return "key-type";
        case JwtRefusal::kSignature:
            return "signature";
        case JwtRefusal::kAudience:
            return "audience";
        case JwtRefusal::kExpired:
            return "expired";
        case JwtRefusal::kLifetime:
            return "lifetime";
        case JwtRefusal::kReplayed:
            return "replayed";
    }
    return "unknown";
}

bool VerifySha384(EVP_PKEY* key, std::string_view signing_input, std::string_view signature) {
    std::string der;
    if (EVP_PKEY_get_base_id(key) == EVP_PKEY_EC) {
        auto converted = JoseToDer(signature);
        if (!converted) return false;
        der = std::move(*converted);
        signature = der;
    }
    // Fetched once: EVP_sha384() makes OpenSSL 3 look the algorithm up (under a lock) on every
    // call, which costs as much as the verification itself.
    static EVP_MD* const kSha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    const bool ok =
        ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, kSha384, nullptr, key) == 1 &&
        EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                         signature.size(),
                         reinterpret_cast<const unsigned char*>(signing_input.data()),
                         signing_input.size()) == 1;
    // A failed verification leaves an entry in this thread's error queue.
    ERR_clear_error();
    return ok;
}

JwtVerifier::JwtVerifier(const CdsSettings& settings, JwksCache& keys, WallClock now)
    : settings_(settings), keys_(keys), now_(std::move(now)) {}

const CdsIssuer* JwtVerifier::IssuerOf(std::string_view iss) const {
    for (const CdsIssuer& issuer : settings_.issuers) {
        if (issuer.issuer == iss) return &issuer;
    }
    return nullptr;
}

bool JwtVerifier::FirstUse(const std::string& key, TimePoint expires) {
    const TimePoint now = now_();
    std::lock_guard lock(jti_mutex_);
    // What has expired can no longer be replayed: forgotten, oldest first, so the cache holds
    // only the tokens alive in the last few minutes and each call prunes only what it must.
    while (!expiries_.empty() && expiries_.begin()->first < now) {
        seen_.erase(expiries_.begin()->second);
        expiries_.erase(expiries_.begin());
    }
    if (!seen_.emplace(key, expires).second) return false;
    expiries_.emplace(expires, key);
    return true;
}

boost::asio::awaitable<JwtCheck> JwtVerifier::Verify(std::string authorization,
                                                     std::string audience) {
    auto token = BearerToken(authorization);
    if (!token) co_return Refuse(JwtRefusal::kMissing);
    const std::size_t first = token->find('.');
    const std::size_t second =
        first == std::string_view::npos ? first : token->find('.', first + 1);
    if (second == std::string_view::npos ||
        token->find('.', second + 1) != std::string_view::npos) {
        co_return Refuse(JwtRefusal::kMalformed);
    }
    auto header = JsonObjectOf(token->substr(0, first));
    auto claims = JsonObjectOf(token->substr(first + 1, second - first - 1));
    auto signature = Base64UrlDecode(token->substr(second + 1));
    if (!header || !claims || !signature) co_return Refuse(JwtRefusal::kMalformed);
    const fhir::Node h = header->Root();
    const fhir::Node c = claims->Root();

    // The algorithm is ours to choose, not the token's: `none` and HMAC (which would take a
    // public key as the secret) never get near a key.
    const std::string_view alg = h["alg"].String();
    if (alg != "RS384" && alg != "ES384") co_return Refuse(JwtRefusal::kAlgorithm);
    const CdsIssuer* issuer = IssuerOf(c["iss"].String());
    if (issuer == nullptr) co_return Refuse(JwtRefusal::kIssuer);
    std::string key_set_url;
    if (h["jku"].Exists()) {
        // A URL in a token is data: fetched only when the configuration names it for this
        // issuer, so a token cannot make MicroCare trust keys of its own choosing.
        auto jku = NormalHttpUrl(h["jku"].String());
        if (!jku || std::find(issuer->jwks_urls.begin(), issuer->jwks_urls.end(), *jku) ==
                        issuer->jwks_urls.end()) {
            co_return Refuse(JwtRefusal::kJku);
        }
        key_set_url = *jku;
    }
    const std::string kid(h["kid"].String());
    if (kid.empty()) co_return Refuse(JwtRefusal::kUnknownKey);
    std::shared_ptr<const JsonWebKey> key;
    if (key_set_url.empty()) {
        key = co_await keys_.Find(*issuer, "", kid);
        for (std::size_t i = 0; !key && i < issuer->jwks_urls.size(); ++i) {
            key = co_await keys_.Find(*issuer, issuer->jwks_urls[i], kid);
        }
    } else {
        key = co_await keys_.Find(*issuer, key_set_url, kid);
    }
    if (!key) co_return Refuse(JwtRefusal::kUnknownKey);
    if ((alg == "RS384") != (key->kty == "RSA")) co_return Refuse(JwtRefusal::kKeyType);
    if (!VerifySha384(key->key.get(), token->substr(0, second), *signature)) {
        co_return Refuse(JwtRefusal::kSignature);
    }

    if (!AudienceIs(c["aud"], audience)) co_return Refuse(JwtRefusal::kAudience);
    const auto exp = c["exp"].Number();
    if (!exp || !std::isfinite(*exp)) co_return Refuse(JwtRefusal::kExpired);
    const TimePoint now = now_();
    const TimePoint expires{std::chrono::milliseconds(static_cast<long long>(*exp * 1000))};
    if (expires + settings_.clock_skew < now) co_return Refuse(JwtRefusal::kExpired);
    if (expires > now + settings_.max_token_lifetime + settings_.clock_skew) {
        co_return Refuse(JwtRefusal::kLifetime);
    }
    // Last, once everything else holds: a forged token cannot use up a real jti.
    const std::string jti(c["jti"].String());
    if (jti.empty() || !FirstUse(issuer->issuer + "\n" + jti, expires + settings_.clock_skew)) {
        co_return Refuse(JwtRefusal::kReplayed);
    }
    co_return JwtCheck{CdsClient{issuer, jti, std::string(c["sub"].String())},
                       JwtRefusal::kMissing};
}

}  // namespace microcare::adapter
