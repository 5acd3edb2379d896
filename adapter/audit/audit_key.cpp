#include "adapter/audit/audit_key.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <array>

namespace microcare::adapter {
namespace {

constexpr std::size_t kMinKeyBytes = 32;

std::string Hex(const unsigned char* data, std::size_t length) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(length * 2);
    for (std::size_t i = 0; i < length; ++i) {
        hex += kHex[data[i] >> 4];
        hex += kHex[data[i] & 0xf];
    }
    return hex;
}

struct MacDeleter {
    void operator()(EVP_MAC* mac) const { EVP_MAC_free(mac); }
};
struct MacContextDeleter {
    void operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }
};

}  // namespace

struct ChainKey::Impl {
    std::unique_ptr<EVP_MAC, MacDeleter> mac;  // null: plain SHA-256
    std::string key;
    std::string id = "none";

    // HMAC-SHA-256 with OpenSSL 3's EVP_MAC; empty when OpenSSL fails (no provider).
    std::string Hmac(std::string_view bytes) const {
        std::unique_ptr<EVP_MAC_CTX, MacContextDeleter> ctx(EVP_MAC_CTX_new(mac.get()));
        if (!ctx) return {};
        char digest_name[] = "SHA256";
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
            OSSL_PARAM_construct_end()};
        std::array<unsigned char, EVP_MAX_MD_SIZE> out{};
        std::size_t length = 0;
        if (EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                         params) != 1 ||
            EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(bytes.data()),
                           bytes.size()) != 1 ||
            EVP_MAC_final(ctx.get(), out.data(), &length, out.size()) != 1) {
            return {};
        }
        return Hex(out.data(), length);
    }
};

ChainKey::ChainKey() : impl_(std::make_shared<const Impl>()) {}

Result<ChainKey> ChainKey::Hmac(std::string key) {
    if (!KeyProblem(key).empty()) return Error::kInvalidConfig;
    auto impl = std::make_shared<Impl>();
    impl->mac.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!impl->mac) return Error::kInvalidConfig;
    impl->key = std::move(key);
    // The id is a MAC of a fixed text: it names the key without revealing it.
    const std::string id = impl->Hmac("microcare audit key id");
    if (id.empty()) return Error::kInvalidConfig;
    impl->id = id.substr(0, 16);
    ChainKey chain_key;
    chain_key.impl_ = std::move(impl);
    return chain_key;
}

bool ChainKey::keyed() const { return impl_->mac != nullptr; }

const std::string& ChainKey::id() const { return impl_->id; }

std::string ChainKey::Seal(std::string_view bytes) const {
    return keyed() ? impl_->Hmac(bytes) : Sha256Hex(bytes);
}

std::string ChainKey::KeyProblem(std::string_view key) {
    if (key.size() < kMinKeyBytes) {
        return "too short: the key must hold at least 32 bytes (e.g. `openssl rand -hex 32`)";
    }
    return {};
}

std::string Sha256Hex(std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
    return Hex(digest, length);
}

bool SealsEqual(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace microcare::adapter
