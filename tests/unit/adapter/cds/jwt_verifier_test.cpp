#include "adapter/cds/jwt_verifier.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "adapter/client/jwt.hpp"
#include "cds_test_keys.hpp"

namespace microcare::adapter {
namespace {

using testing::CdsClaims;
using testing::SignedJwt;
using testing::TestKey;

constexpr const char* kIssuer = "https://ehr.example";
constexpr const char* kUrlIssuer = "https://other.example";
constexpr const char* kKeysUrl = "https://keys.other.example/jwks.json";
constexpr const char* kAudience = "https://microcare.example/cds-services/microcare-order-sign";

// Made once: RSA key generation takes a while.
const TestKey& Rsa() {
    static const TestKey key = testing::MakeRsaKey("rsa-1");
    return key;
}
const TestKey& Ec() {
    static const TestKey key = testing::MakeP384Key("ec-1");
    return key;
}
const TestKey& Stranger() {
    static const TestKey key = testing::MakeRsaKey("rsa-1");  // same kid, another key
    return key;
}
const TestKey& Rotated() {
    static const TestKey key = testing::MakeRsaKey("rsa-2");
    return key;
}

class JwtVerifierTest : public ::testing::Test {
protected:
    JwtVerifierTest() {
        settings_.service_base_url = "https://microcare.example";
        settings_.issuers.push_back(CdsIssuer{kIssuer, {}, testing::JwksOf({&Rsa(), &Ec()}), {}});
        settings_.issuers.push_back(CdsIssuer{kUrlIssuer, {kKeysUrl}, "", {}});
        url_keys_ = testing::JwksOf({&Rsa()});
    }

    JwtCheck Verify(const std::string& token, const std::string& audience = kAudience) {
        if (!verifier_) {
            cache_ = std::make_unique<JwksCache>(
                settings_,
                [this](std::string url) -> boost::asio::awaitable<std::optional<std::string>> {
                    fetched_.push_back(url);
                    co_return url_keys_;
                },
                [this] { return now_; });
            verifier_ = std::make_unique<JwtVerifier>(settings_, *cache_, [this] { return now_; });
        }
        boost::asio::io_context io;
        auto future = boost::asio::co_spawn(io, verifier_->Verify("Bearer " + token, audience),
                                            boost::asio::use_future);
        io.run();
        return future.get();
    }

    long long Exp(int seconds_ahead) const {
        return std::chrono::duration_cast<std::chrono::seconds>(now_.time_since_epoch()).count() +
               seconds_ahead;
    }
    std::string Claims(const std::string& jti, int ahead = 120, const std::string& iss = kIssuer,
                       const std::string& aud = kAudience) {
        return CdsClaims(iss, aud, Exp(ahead), jti);
    }
    static void ExpectRefused(const JwtCheck& check, JwtRefusal why) {
        EXPECT_FALSE(check.client.has_value());
        EXPECT_EQ(ToString(check.refusal), ToString(why));
    }

    CdsSettings settings_;
    TimePoint now_{std::chrono::sys_days{std::chrono::year{2026} / 12 / 6} + std::chrono::hours(9)};
    std::string url_keys_;
    std::vector<std::string> fetched_;
    std::unique_ptr<JwksCache> cache_;
    std::unique_ptr<JwtVerifier> verifier_;
};

TEST_F(JwtVerifierTest, AcceptsRs384AndEs384FromTheInlineKeySet) {
    JwtCheck rsa = Verify(SignedJwt(Rsa(), Claims("a")));
    ASSERT_TRUE(rsa.client) << ToString(rsa.refusal);
    EXPECT_EQ(rsa.client->issuer->issuer, kIssuer);
    JwtCheck ec = Verify(SignedJwt(Ec(), Claims("b")));
    ASSERT_TRUE(ec.client) << ToString(ec.refusal);
    EXPECT_TRUE(fetched_.empty());
}

TEST_F(JwtVerifierTest, RefusesAMissingOrMalformedToken) {
    boost::asio::io_context io;
    cache_ = std::make_unique<JwksCache>(settings_, JwksFetch{}, [this] { return now_; });
    JwtVerifier verifier(settings_, *cache_, [this] { return now_; });
    auto none = boost::asio::co_spawn(io, verifier.Verify("", kAudience), boost::asio::use_future);
    auto basic = boost::asio::co_spawn(io, verifier.Verify("Basic dXNlcjpwYXNz", kAudience),
                                       boost::asio::use_future);
    io.run();
    ExpectRefused(none.get(), JwtRefusal::kMissing);
    ExpectRefused(basic.get(), JwtRefusal::kMissing);
    ExpectRefused(Verify("a.b"), JwtRefusal::kMalformed);
    ExpectRefused(Verify("not!base64.e30.e30"), JwtRefusal::kMalformed);
}

TEST_F(JwtVerifierTest, RefusesAnIssuerNotConfigured) {
    ExpectRefused(Verify(SignedJwt(Rsa(), Claims("c", 120, "https://evil.example"))),
                  JwtRefusal::kIssuer);
}

TEST_F(JwtVerifierTest, RefusesAConfiguredIssuerSigningWithAKeyItDoesNotHave) {
    // Same kid as a configured key, different key: the signature does not verify.
    ExpectRefused(Verify(SignedJwt(Stranger(), Claims("d"))), JwtRefusal::kSignature);
}

TEST_F(JwtVerifierTest, RefusesAnUnknownKid) {
    ExpectRefused(Verify(SignedJwt(Rotated(), Claims("e"))), JwtRefusal::kUnknownKey);
}

TEST_F(JwtVerifierTest, RefusesAnotherAudience) {
    ExpectRefused(
        Verify(SignedJwt(Rsa(), Claims("f", 120, kIssuer,
                                       "https://microcare.example/cds-services/microcare-order-"
                                       "select"))),
        JwtRefusal::kAudience);
    // The exact URL: not a prefix of it, not another host.
    ExpectRefused(Verify(SignedJwt(Rsa(), Claims("g", 120, kIssuer, "https://microcare.example"))),
                  JwtRefusal::kAudience);
}

TEST_F(JwtVerifierTest, RefusesExpiredAndTooLongLivedTokens) {
    ExpectRefused(Verify(SignedJwt(Rsa(), Claims("h", -31))), JwtRefusal::kExpired);
    ExpectRefused(Verify(SignedJwt(Rsa(), Claims("i", 5 * 60 + 31))), JwtRefusal::kLifetime);
    // Within the skew on both sides: accepted.
    EXPECT_TRUE(Verify(SignedJwt(Rsa(), Claims("j", -29))).client);
    EXPECT_TRUE(Verify(SignedJwt(Rsa(), Claims("k", 5 * 60 + 29))).client);
    // No exp at all.
    ExpectRefused(Verify(SignedJwt(Rsa(), std::string(R"({"iss":")") + kIssuer + R"(","aud":")" +
                                              kAudience + R"(","jti":"l"})")),
                  JwtRefusal::kExpired);
}

TEST_F(JwtVerifierTest, RefusesAReplayedJtiUntilItHasExpired) {
    const std::string token = SignedJwt(Rsa(), Claims("m", 60));
    EXPECT_TRUE(Verify(token).client);
    ExpectRefused(Verify(token), JwtRefusal::kReplayed);
    // Another token with the same jti is a replay too.
    ExpectRefused(Verify(SignedJwt(Rsa(), Claims("m", 90))), JwtRefusal::kReplayed);
    ExpectRefused(
        Verify(SignedJwt(Rsa(), std::string(R"({"iss":")") + kIssuer + R"(","aud":")" + kAudience +
                                    R"(","exp":)" + std::to_string(Exp(60)) + "}")),
        JwtRefusal::kReplayed);
}

TEST_F(JwtVerifierTest, RefusesAlgNoneAndHmacWithThePublicKeyAsSecret) {
    ExpectRefused(Verify(testing::UnsignedJwt("rsa-1", Claims("n"))), JwtRefusal::kAlgorithm);
    ExpectRefused(Verify(testing::HmacJwt(Rsa().public_pem, "rsa-1", Claims("o"))),
                  JwtRefusal::kAlgorithm);
}

TEST_F(JwtVerifierTest, RefusesATamperedPayload) {
    const std::string token = SignedJwt(Rsa(), Claims("p"));
    const std::size_t first = token.find('.');
    const std::size_t second = token.find('.', first + 1);
    const std::string forged = token.substr(0, first) + "." +
                               Base64UrlEncode(Claims("p", 120, kIssuer, kAudience) + " ") +
                               token.substr(second);
    ExpectRefused(Verify(forged), JwtRefusal::kSignature);
    // An ES384 signature with one bit flipped.
    std::string ec = SignedJwt(Ec(), Claims("q"));
    ec.back() = ec.back() == 'A' ? 'B' : 'A';
    ExpectRefused(Verify(ec), JwtRefusal::kSignature);
}

TEST_F(JwtVerifierTest, RefusesAKeyOfTheWrongType) {
    // An EC key's kid in a token that says RS384.
    const TestKey ec_as_rsa{"RS384", "ec-1", Rsa().private_pem, "", ""};
    ExpectRefused(Verify(SignedJwt(ec_as_rsa, Claims("r"))), JwtRefusal::kKeyType);
}

TEST_F(JwtVerifierTest, NeverFetchesAJkuOutsideTheIssuersUrls) {
    ExpectRefused(Verify(SignedJwt(Rsa(), Claims("s", 120, kUrlIssuer),
                                   R"(,"jku":"https://attacker.example/jwks.json")")),
                  JwtRefusal::kJku);
    // Another issuer's URL is not this one's either.
    ExpectRefused(
        Verify(SignedJwt(Rsa(), Claims("t"), std::string(R"(,"jku":")") + kKeysUrl + "\"")),
        JwtRefusal::kJku);
    EXPECT_TRUE(fetched_.empty());
}

TEST_F(JwtVerifierTest, FetchesConfiguredKeySetsAndRefreshesOnAnUnknownKidAtMostOncePerInterval) {
    const std::string jku = std::string(R"(,"jku":")") + kKeysUrl + "\"";
    EXPECT_TRUE(Verify(SignedJwt(Rsa(), Claims("u", 120, kUrlIssuer), jku)).client);
    EXPECT_TRUE(Verify(SignedJwt(Rsa(), Claims("v", 120, kUrlIssuer))).client);
    ASSERT_EQ(fetched_.size(), 1u);
    EXPECT_EQ(fetched_[0], kKeysUrl);
    // The issuer rotates its key: the first token with the new kid refreshes the set...
    url_keys_ = testing::JwksOf({&Rsa(), &Rotated()});
    now_ += std::chrono::seconds(61);
    EXPECT_TRUE(Verify(SignedJwt(Rotated(), Claims("w", 120, kUrlIssuer))).client);
    EXPECT_EQ(fetched_.size(), 2u);
    // ... and made-up kids cost one fetch per interval, not one each: none within this one,
    // one in the next.
    ExpectRefused(Verify(SignedJwt(TestKey{"RS384", "made-up", Rsa().private_pem, "", ""},
                                   Claims("x", 120, kUrlIssuer))),
                  JwtRefusal::kUnknownKey);
    EXPECT_EQ(fetched_.size(), 2u);
    now_ += std::chrono::seconds(61);
    for (int i = 0; i < 5; ++i) {
        const TestKey made_up{"RS384", "made-up-" + std::to_string(i), Rsa().private_pem, "", ""};
        ExpectRefused(Verify(SignedJwt(made_up, Claims("x" + std::to_string(i), 120, kUrlIssuer))),
                      JwtRefusal::kUnknownKey);
    }
    EXPECT_EQ(fetched_.size(), 3u);
}

TEST(Jwks, SkipsKeysItCannotVerifyWith) {
    const std::string set = R"({"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0"},)"
                            R"({"kty":"EC","crv":"P-256","kid":"p256","x":"AA","y":"AA"},)" +
                            testing::MakeP384Key("ok").jwk + "]}";
    auto keys = ParseJwks(set);
    ASSERT_TRUE(keys);
    ASSERT_EQ(keys->size(), 1u);
    EXPECT_EQ((*keys)[0].kid, "ok");
    EXPECT_FALSE(ParseJwks("[]"));
}

TEST(JoseToDer, RoundTripsAnEs384Signature) {
    const TestKey& key = Ec();
    const std::string token = SignedJwt(key, R"({"a":1})");
    const std::size_t dot = token.rfind('.');
    auto raw = Base64UrlDecode(token.substr(dot + 1));
    ASSERT_TRUE(raw);
    ASSERT_EQ(raw->size(), 96u);
    EXPECT_TRUE(JoseToDer(*raw));
    EXPECT_FALSE(JoseToDer(raw->substr(1)));
}

}  // namespace
}  // namespace microcare::adapter
