#pragma once

// Keys and certificates made fresh by each test with OpenSSL, so that no secret is checked in
// and none expires: a CA, a server certificate it signed, and signing keys for JWTs.

#include <openssl/types.h>

#include <string>

namespace microcare::adapter::test_support {

std::string GenerateRsaKeyPem(unsigned bits = 2048);
std::string GenerateEcKeyPem(const char* curve = "P-384");
std::string PublicKeyPem(const std::string& private_key_pem);

struct Certificates {
    std::string ca_pem;
    std::string cert_pem;  // the server's, signed by the CA
    std::string key_pem;   // the server's private key
};

// A new CA and a server certificate for `subject_alt_names` in OpenSSL's configuration
// syntax, e.g. "DNS:localhost,IP:127.0.0.1".
Certificates MakeCertificates(const std::string& subject_alt_names);

void UseServerCertificate(SSL_CTX* ctx, const Certificates& certificates);
void TrustCa(SSL_CTX* ctx, const std::string& ca_pem);

// Checks a JWS compact serialisation's signature (RS384 or ES384) with a PEM public key.
bool VerifyJws(const std::string& jws, const std::string& public_key_pem, const std::string& alg);

}  // namespace microcare::adapter::test_support
