// JWS signing for SMART client assertions: base64url, the key/algorithm checks, and signatures
// that OpenSSL verifies independently with the public key.
#include "adapter/client/jwt.hpp"

#include <gtest/gtest.h>

#include "test_pki.hpp"

namespace microcare::adapter {
namespace {

using test_support::GenerateEcKeyPem;
using test_support::GenerateRsaKeyPem;
using test_support::PublicKeyPem;
using test_support::VerifyJws;

TEST(Base64Url, EncodesRfc4648VectorsWithoutPadding) {
    EXPECT_EQ(Base64UrlEncode(""), "");
    EXPECT_EQ(Base64UrlEncode("f"), "Zg");
    EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
    EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
    EXPECT_EQ(Base64UrlEncode("foob"), "Zm9vYg");
    EXPECT_EQ(Base64UrlEncode("fooba"), "Zm9vYmE");
    EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
    // The two characters where base64url differs from base64 ("+/" there).
    EXPECT_EQ(Base64UrlEncode(std::string("\xfb\xff", 2)), "-_8");
}

TEST(Base64Url, DecodesWithAndWithoutPaddingAndRefusesOthers) {
    EXPECT_EQ(Base64UrlDecode("Zm9vYmE"), "fooba");
    EXPECT_EQ(Base64UrlDecode("Zm9vYg=="), "foob");
    EXPECT_EQ(Base64UrlDecode("-_8"), std::string("\xfb\xff", 2));
    EXPECT_FALSE(Base64UrlDecode("Zm9v+g"));
    EXPECT_FALSE(Base64UrlDecode("Z"));
}

TEST(JwtSigner, Rs384SignatureVerifiesWithPublicKey) {
    const std::string key = GenerateRsaKeyPem();
    auto signer = JwtSigner::Load(key, "RS384");
    ASSERT_TRUE(signer.has_value());
    auto jws = signer->Sign(R"({"alg":"RS384"})", R"({"iss":"me"})");
    ASSERT_TRUE(jws.has_value());
    EXPECT_EQ(jws->substr(0, jws->rfind('.')),
              Base64UrlEncode(R"({"alg":"RS384"})") + "." + Base64UrlEncode(R"({"iss":"me"})"));
    EXPECT_TRUE(VerifyJws(*jws, PublicKeyPem(key), "RS384"));
    EXPECT_FALSE(VerifyJws(*jws, PublicKeyPem(GenerateRsaKeyPem()), "RS384"));
}

TEST(JwtSigner, Es384SignatureIsRawRAndSAndVerifies) {
    const std::string key = GenerateEcKeyPem("P-384");
    auto signer = JwtSigner::Load(key, "ES384");
    ASSERT_TRUE(signer.has_value());
    // ECDSA is randomised and DER lengths vary with leading zeros; the JOSE form never does.
    for (int i = 0; i < 8; ++i) {
        auto jws = signer->Sign(R"({"alg":"ES384"})", R"({"n":)" + std::to_string(i) + "}");
        ASSERT_TRUE(jws.has_value());
        auto signature = Base64UrlDecode(jws->substr(jws->rfind('.') + 1));
        ASSERT_TRUE(signature.has_value());
        EXPECT_EQ(signature->size(), 96u);
        EXPECT_TRUE(VerifyJws(*jws, PublicKeyPem(key), "ES384"));
    }
}

TEST(JwtSigner, RefusesKeysThatDoNotFitTheAlgorithm) {
    const std::string rsa = GenerateRsaKeyPem();
    const std::string p384 = GenerateEcKeyPem("P-384");
    EXPECT_EQ(JwtSigner::Load(rsa, "ES384").error(), Error::kAuthFailed);
    EXPECT_EQ(JwtSigner::Load(p384, "RS384").error(), Error::kAuthFailed);
    EXPECT_EQ(JwtSigner::Load(GenerateEcKeyPem("P-256"), "ES384").error(), Error::kAuthFailed);
    EXPECT_EQ(JwtSigner::Load(GenerateRsaKeyPem(1024), "RS384").error(), Error::kAuthFailed);
    EXPECT_EQ(JwtSigner::Load(rsa, "HS256").error(), Error::kAuthFailed);
    EXPECT_EQ(JwtSigner::Load("not a key", "RS384").error(), Error::kAuthFailed);
    EXPECT_EQ(JwtSigner::Load(PublicKeyPem(rsa), "RS384").error(), Error::kAuthFailed);
}

}  // namespace
}  // namespace microcare::adapter
