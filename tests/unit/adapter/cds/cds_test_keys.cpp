#include "cds_test_keys.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <memory>
#include <stdexcept>

#include "adapter/client/jwt.hpp"

namespace microcare::testing {
namespace {

using adapter::Base64UrlEncode;

std::string Pem(EVP_PKEY* key, bool is_private) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), BIO_free);
    const int ok =
        is_private ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
                   : PEM_write_bio_PUBKEY(bio.get(), key);
    if (ok != 1) throw std::runtime_error("PEM");
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(size));
}

std::string BigNum(EVP_PKEY* key, const char* name, int pad = 0) {
    BIGNUM* n = nullptr;
    if (EVP_PKEY_get_bn_param(key, name, &n) != 1) throw std::runtime_error(name);
    std::string bytes(pad ? pad : BN_num_bytes(n), '\0');
    BN_bn2binpad(n, reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    BN_free(n);
    return Base64UrlEncode(bytes);
}

TestKey Finish(EVP_PKEY* key, std::string alg, std::string kid, std::string jwk) {
    TestKey out{std::move(alg), std::move(kid), Pem(key, true), Pem(key, false), std::move(jwk)};
    EVP_PKEY_free(key);
    return out;
}

}  // namespace

TestKey MakeRsaKey(const std::string& kid) {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<size_t>(2048));
    if (key == nullptr) throw std::runtime_error("RSA keygen");
    std::string jwk = R"({"kty":"RSA","use":"sig","alg":"RS384","kid":")" + kid + R"(","n":")" +
                      BigNum(key, OSSL_PKEY_PARAM_RSA_N) + R"(","e":")" +
                      BigNum(key, OSSL_PKEY_PARAM_RSA_E) + R"("})";
    return Finish(key, "RS384", kid, std::move(jwk));
}

TestKey MakeP384Key(const std::string& kid) {
    EVP_PKEY* key = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-384");
    if (key == nullptr) throw std::runtime_error("P-384 keygen");
    std::string jwk = R"({"kty":"EC","crv":"P-384","use":"sig","alg":"ES384","kid":")" + kid +
                      R"(","x":")" + BigNum(key, OSSL_PKEY_PARAM_EC_PUB_X, 48) + R"(","y":")" +
                      BigNum(key, OSSL_PKEY_PARAM_EC_PUB_Y, 48) + R"("})";
    return Finish(key, "ES384", kid, std::move(jwk));
}

std::string JwksOf(const std::vector<const TestKey*>& keys) {
    std::string out = R"({"keys":[)";
    for (std::size_t i = 0; i < keys.size(); ++i) out += (i ? "," : "") + keys[i]->jwk;
    return out + "]}";
}

std::string SignedJwt(const TestKey& key, const std::string& claims_json,
                      const std::string& extra_header) {
    auto signer = adapter::JwtSigner::Load(key.private_pem, key.alg);
    if (!signer) throw std::runtime_error("signer");
    const std::string header =
        R"({"alg":")" + key.alg + R"(","typ":"JWT","kid":")" + key.kid + "\"" + extra_header + "}";
    auto token = signer->Sign(header, claims_json);
    if (!token) throw std::runtime_error("sign");
    return *token;
}

std::string CdsClaims(const std::string& iss, const std::string& aud, long long exp,
                      const std::string& jti) {
    return R"({"iss":")" + iss + R"(","sub":"ehr-client","aud":")" + aud + R"(","exp":)" +
           std::to_string(exp) + R"(,"iat":)" + std::to_string(exp - 60) + R"(,"jti":")" + jti +
           R"("})";
}

std::string HmacJwt(const std::string& secret, const std::string& kid, const std::string& claims) {
    const std::string input =
        Base64UrlEncode(R"({"alg":"HS256","typ":"JWT","kid":")" + kid + R"("})") + "." +
        Base64UrlEncode(claims);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &length);
    return input + "." + Base64UrlEncode(std::string(reinterpret_cast<char*>(mac), length));
}

std::string UnsignedJwt(const std::string& kid, const std::string& claims) {
    return Base64UrlEncode(R"({"alg":"none","typ":"JWT","kid":")" + kid + R"("})") + "." +
           Base64UrlEncode(claims) + ".";
}

}  // namespace microcare::testing
