#pragma once

#include <openssl/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "adapter/error.hpp"

namespace microcare::adapter {

// Base64url without padding (RFC 7515 section 2), as JWS uses it.
std::string Base64UrlEncode(std::string_view bytes);
// Accepts input with or without padding; nullopt for anything that is not base64url.
std::optional<std::string> Base64UrlDecode(std::string_view text);

// An ES384 signature as JOSE writes it (R || S, 48 bytes each) in the DER form OpenSSL's
// EVP_DigestVerify takes; nullopt when it is not 96 bytes.
std::optional<std::string> JoseToDer(std::string_view raw);

// Signs JWS compact serialisations (RFC 7515) with one private key, as SMART Backend Services'
// client assertions need: RS384 (RSASSA-PKCS1-v1_5, SHA-384) or ES384 (ECDSA P-384, SHA-384,
// the signature as JOSE's fixed-size R || S rather than OpenSSL's DER).
class JwtSigner {
public:
    // Error::kAuthFailed when the PEM is no private key, is encrypted, or does not fit the
    // algorithm (RS384 wants RSA of 2048 bits or more, ES384 wants EC on P-384).
    static Result<JwtSigner> Load(std::string_view private_key_pem, std::string_view algorithm);

    JwtSigner(JwtSigner&&) noexcept = default;
    JwtSigner& operator=(JwtSigner&&) noexcept = default;
    ~JwtSigner() = default;

    // base64url(header) "." base64url(claims) "." base64url(signature); the arguments are the
    // JSON texts. Error::kAuthFailed if OpenSSL cannot sign.
    Result<std::string> Sign(std::string_view header_json, std::string_view claims_json) const;

    const std::string& algorithm() const { return algorithm_; }

private:
    struct KeyDeleter {
        void operator()(EVP_PKEY* key) const;
    };

    JwtSigner(std::unique_ptr<EVP_PKEY, KeyDeleter> key, std::string algorithm)
        : key_(std::move(key)), algorithm_(std::move(algorithm)) {}

    std::unique_ptr<EVP_PKEY, KeyDeleter> key_;
    std::string algorithm_;
};

}  // namespace microcare::adapter
