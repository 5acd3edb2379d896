#include "adapter/client/jwt.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <array>
#include <vector>

namespace microcare::adapter {
namespace {

constexpr std::string_view kAlphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// ES384: R and S are each as wide as the P-384 group order.
constexpr std::size_t kEs384HalfSize = 48;
constexpr int kMinRsaBits = 2048;

// OpenSSL's error queue is per thread and outlives the call: a stale entry would be blamed on
// whichever TLS operation runs next on this thread.
template <typename T>
Result<T> Fail() {
    ERR_clear_error();
    return Error::kAuthFailed;
}

// Without a callback OpenSSL asks for an encrypted key's passphrase on the terminal.
int NoPassphrase(char*, int, int, void*) { return 0; }

struct MdCtxDeleter {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct EcdsaSigDeleter {
    void operator()(ECDSA_SIG* sig) const { ECDSA_SIG_free(sig); }
};
struct BioDeleter {
    void operator()(BIO* bio) const { BIO_free(bio); }
};

std::optional<std::string> DerToJose(const std::vector<unsigned char>& der) {
    const unsigned char* cursor = der.data();
    std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(
        d2i_ECDSA_SIG(nullptr, &cursor, static_cast<long>(der.size())));
    if (!sig) return std::nullopt;
    const BIGNUM* r = nullptr;
    const BIGNUM* s = nullptr;
    ECDSA_SIG_get0(sig.get(), &r, &s);
    std::string raw(2 * kEs384HalfSize, '\0');
    auto* out = reinterpret_cast<unsigned char*>(raw.data());
    if (BN_bn2binpad(r, out, kEs384HalfSize) != static_cast<int>(kEs384HalfSize) ||
        BN_bn2binpad(s, out + kEs384HalfSize, kEs384HalfSize) != static_cast<int>(kEs384HalfSize)) {
        return std::nullopt;
    }
    return raw;
}

}  // namespace

std::optional<std::string> JoseToDer(std::string_view raw) {
    if (raw.size() != 2 * kEs384HalfSize) return std::nullopt;
    const auto* bytes = reinterpret_cast<const unsigned char*>(raw.data());
    std::unique_ptr<ECDSA_SIG, EcdsaSigDeleter> sig(ECDSA_SIG_new());
    BIGNUM* r = BN_bin2bn(bytes, kEs384HalfSize, nullptr);
    BIGNUM* s = BN_bin2bn(bytes + kEs384HalfSize, kEs384HalfSize, nullptr);
    // ECDSA_SIG_set0 takes ownership of both only when it succeeds.
    if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
        BN_free(r);
        BN_free(s);
        return std::nullopt;
    }
    unsigned char* der = nullptr;
    const int length = i2d_ECDSA_SIG(sig.get(), &der);
    if (length <= 0) return std::nullopt;
    std::string out(reinterpret_cast<const char*>(der), static_cast<std::size_t>(length));
    OPENSSL_free(der);
    return out;
}

std::string Base64UrlEncode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    auto at = [&](std::size_t k) { return static_cast<unsigned char>(bytes[k]); };
    for (; i + 3 <= bytes.size(); i += 3) {
        const unsigned v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
        out += kAlphabet[v & 63];
    }
    const std::size_t rest = bytes.size() - i;
    if (rest == 1) {
        const unsigned v = at(i) << 16;
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
    } else if (rest == 2) {
        const unsigned v = (at(i) << 16) | (at(i + 1) << 8);
        out += kAlphabet[(v >> 18) & 63];
        out += kAlphabet[(v >> 12) & 63];
        out += kAlphabet[(v >> 6) & 63];
    }
    return out;
}

std::optional<std::string> Base64UrlDecode(std::string_view text) {
    while (!text.empty() && text.back() == '=') text.remove_suffix(1);
    if (text.size() % 4 == 1) return std::nullopt;
    std::array<int, 256> value{};
    value.fill(-1);
    for (std::size_t i = 0; i < kAlphabet.size(); ++i) {
        value[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int>(i);
    }
    std::string out;
    out.reserve(text.size() * 3 / 4);
    unsigned accumulator = 0;
    int bits = 0;
    for (char c : text) {
        const int v = value[static_cast<unsigned char>(c)];
        if (v < 0) return std::nullopt;
        accumulator = (accumulator << 6) | static_cast<unsigned>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((accumulator >> bits) & 0xFF);
        }
    }
    return out;
}

void JwtSigner::KeyDeleter::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }

Result<JwtSigner> JwtSigner::Load(std::string_view private_key_pem, std::string_view algorithm) {
    if (algorithm != "RS384" && algorithm != "ES384") return Fail<JwtSigner>();
    std::unique_ptr<BIO, BioDeleter> bio(
        BIO_new_mem_buf(private_key_pem.data(), static_cast<int>(private_key_pem.size())));
    if (!bio) return Fail<JwtSigner>();
    std::unique_ptr<EVP_PKEY, KeyDeleter> key(
        PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
    if (!key) return Fail<JwtSigner>();

    if (algorithm == "RS384") {
        if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) return Fail<JwtSigner>();
        if (EVP_PKEY_get_bits(key.get()) < kMinRsaBits) return Fail<JwtSigner>();
    } else {
        if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC) return Fail<JwtSigner>();
        std::array<char, 64> group{};
        std::size_t length = 0;
        if (EVP_PKEY_get_group_name(key.get(), group.data(), group.size(), &length) != 1 ||
            std::string_view(group.data(), length) != "secp384r1") {
            return Fail<JwtSigner>();
        }
    }
    return JwtSigner(std::move(key), std::string(algorithm));
}

Result<std::string> JwtSigner::Sign(std::string_view header_json,
                                    std::string_view claims_json) const {
    std::string signing_input = Base64UrlEncode(header_json) + "." + Base64UrlEncode(claims_json);

    std::unique_ptr<EVP_MD_CTX, MdCtxDeleter> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha384(), nullptr, key_.get()) != 1) {
        return Fail<std::string>();
    }
    const auto* data = reinterpret_cast<const unsigned char*>(signing_input.data());
    std::size_t length = 0;
    if (EVP_DigestSign(ctx.get(), nullptr, &length, data, signing_input.size()) != 1) {
        return Fail<std::string>();
    }
    std::vector<unsigned char> signature(length);
    if (EVP_DigestSign(ctx.get(), signature.data(), &length, data, signing_input.size()) != 1) {
        return Fail<std::string>();
    }
    signature.resize(length);

    std::string encoded;
    if (algorithm_ == "ES384") {
        auto raw = DerToJose(signature);
        if (!raw) return Fail<std::string>();
        encoded = Base64UrlEncode(*raw);
    } else {
        encoded = Base64UrlEncode(
            std::string_view(reinterpret_cast<const char*>(signature.data()), signature.size()));
    }
    return signing_input + "." + encoded;
}

}  // namespace microcare::adapter
