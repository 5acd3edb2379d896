#include "adapter/cds/jwk_set.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "adapter/client/jwt.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

constexpr int kMinRsaBits = 2048;
constexpr std::size_t kP384CoordinateSize = 48;

struct ParamBldDeleter {
    void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamDeleter {
    void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};
struct BnDeleter {
    void operator()(BIGNUM* n) const { BN_free(n); }
};
struct CtxDeleter {
    void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};

std::shared_ptr<EVP_PKEY> FromData(const char* type, OSSL_PARAM_BLD* builder) {
    std::unique_ptr<OSSL_PARAM, ParamDeleter> params(OSSL_PARAM_BLD_to_param(builder));
    std::unique_ptr<EVP_PKEY_CTX, CtxDeleter> ctx(
        EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
    EVP_PKEY* key = nullptr;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
        EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
        ERR_clear_error();
        return nullptr;
    }
    return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

std::unique_ptr<BIGNUM, BnDeleter> Number(fhir::Node member) {
    auto bytes = Base64UrlDecode(member.String());
    if (!member.IsString() || !bytes || bytes->empty()) return nullptr;
    return std::unique_ptr<BIGNUM, BnDeleter>(
        BN_bin2bn(reinterpret_cast<const unsigned char*>(bytes->data()),
                  static_cast<int>(bytes->size()), nullptr));
}

std::shared_ptr<EVP_PKEY> RsaKey(fhir::Node jwk) {
    auto n = Number(jwk["n"]);
    auto e = Number(jwk["e"]);
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> builder(OSSL_PARAM_BLD_new());
    if (!n || !e || !builder || OSSL_PARAM_BLD_push_BN(builder.get(), "n", n.get()) != 1 ||
        OSSL_PARAM_BLD_push_BN(builder.get(), "e", e.get()) != 1) {
        return nullptr;
    }
    auto key = FromData("RSA", builder.get());
    if (key && EVP_PKEY_get_bits(key.get()) < kMinRsaBits) return nullptr;
    return key;
}

std::shared_ptr<EVP_PKEY> P384Key(fhir::Node jwk) {
    if (jwk["crv"].String() != "P-384") return nullptr;
    auto x = Base64UrlDecode(jwk["x"].String());
    auto y = Base64UrlDecode(jwk["y"].String());
    if (!x || !y || x->size() != kP384CoordinateSize || y->size() != kP384CoordinateSize) {
        return nullptr;
    }
    std::string point = "\x04" + *x + *y;  // uncompressed SEC1 point
    std::unique_ptr<OSSL_PARAM_BLD, ParamBldDeleter> builder(OSSL_PARAM_BLD_new());
    if (!builder ||
        OSSL_PARAM_BLD_push_utf8_string(builder.get(), OSSL_PKEY_PARAM_GROUP_NAME, "secp384r1",
                                        0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(builder.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(),
                                         point.size()) != 1) {
        return nullptr;
    }
    return FromData("EC", builder.get());
}

}  // namespace

std::optional<std::vector<JsonWebKey>> ParseJwks(std::string_view json) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(std::string(json), issues);
    if (!doc) return std::nullopt;
    fhir::Node keys = doc->Root()["keys"];
    if (!keys.IsArray()) return std::nullopt;
    std::vector<JsonWebKey> out;
    for (std::size_t i = 0; i < keys.Size(); ++i) {
        fhir::Node jwk = keys[i];
        const std::string_view kid = jwk["kid"].String();
        const std::string_view kty = jwk["kty"].String();
        const std::string_view use = jwk["use"].String();
        if (kid.empty() || (!use.empty() && use != "sig")) continue;
        std::shared_ptr<EVP_PKEY> key;
        if (kty == "RSA") key = RsaKey(jwk);
        if (kty == "EC") key = P384Key(jwk);
        if (key) out.push_back(JsonWebKey{std::string(kid), std::string(kty), std::move(key)});
    }
    return out;
}

}  // namespace microcare::adapter
