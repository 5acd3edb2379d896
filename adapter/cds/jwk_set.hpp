#pragma once

#include <openssl/types.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace microcare::adapter {

// A public key of a JWK Set (RFC 7517), usable with EVP_DigestVerify.
struct JsonWebKey {
    std::string kid;
    std::string kty;  // "RSA" or "EC" (P-384 only)
    std::shared_ptr<EVP_PKEY> key;
};

// The verification keys of a JWK Set: RSA keys of 2048 bits or more and EC keys on P-384,
// with a `kid`. Other keys (symmetric, other curves, `use` other than `sig`) are skipped, so
// that a set shared with other services still works; nullopt when the text is no JWK Set.
std::optional<std::vector<JsonWebKey>> ParseJwks(std::string_view json);

}  // namespace microcare::adapter
