#pragma once

// Keys and JWTs for the CDS Hooks tests, made with OpenSSL at test time: no key material is
// checked in.

#include <string>
#include <vector>

namespace microcare::testing {

struct TestKey {
    std::string alg;  // RS384 or ES384
    std::string kid;
    std::string private_pem;
    std::string public_pem;
    std::string jwk;  // the public key as a JWK (JSON object)
};

TestKey MakeRsaKey(const std::string& kid);   // RSA 2048
TestKey MakeP384Key(const std::string& kid);  // EC P-384

// {"keys": [...]} of the public keys.
std::string JwksOf(const std::vector<const TestKey*>& keys);

// A JWS signed with the key: header {"alg","typ":"JWT","kid"} plus `extra_header` members
// (`,"jku":"..."`), claims as given.
std::string SignedJwt(const TestKey& key, const std::string& claims_json,
                      const std::string& extra_header = "");
// Claims a CDS client sends: iss, sub, aud, exp (Unix seconds), jti.
std::string CdsClaims(const std::string& iss, const std::string& aud, long long exp,
                      const std::string& jti);
// HS256 with `secret` as the HMAC key, and `alg: none` with no signature: what must be refused.
std::string HmacJwt(const std::string& secret, const std::string& kid, const std::string& claims);
std::string UnsignedJwt(const std::string& kid, const std::string& claims);

}  // namespace microcare::testing
