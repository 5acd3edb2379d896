#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "adapter/error.hpp"

namespace microcare::adapter {

// What seals each record of the trail: HMAC-SHA-256 under the configured key, or plain SHA-256
// when there is none. Without the key nobody can recompute a keyed chain, so a rewritten trail
// shows; a plain chain only shows accidents. The key never leaves this object: what the trail,
// the checkpoint and the messages name is its id, a digest from which the key cannot be found.
class ChainKey {
public:
    // Plain SHA-256: an unkeyed trail.
    ChainKey();
    // HMAC-SHA-256 under `key` (at least 32 bytes: KeyProblem).
    static Result<ChainKey> Hmac(std::string key);

    bool keyed() const;
    // "none", or 16 hex digits that name the key.
    const std::string& id() const;
    // The seal of `bytes`: 64 lower-case hex digits.
    std::string Seal(std::string_view bytes) const;

    // Why `key` cannot be used (too short), or empty when it can.
    static std::string KeyProblem(std::string_view key);

private:
    struct Impl;
    std::shared_ptr<const Impl> impl_;
};

// Lower-case hex SHA-256 (OpenSSL EVP).
std::string Sha256Hex(std::string_view data);

// Equality of two seals in constant time: a timing difference would leak how much of a forged
// seal was right.
bool SealsEqual(std::string_view a, std::string_view b);

}  // namespace microcare::adapter
