#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/cds/cds_settings.hpp"
#include "adapter/cds/jwk_set.hpp"
#include "adapter/clock.hpp"

namespace microcare::adapter {

// Fetches a JWK Set from a URL (http(s), normal form); the body or nullopt. A seam: tests
// count and answer the fetches.
using JwksFetch =
    std::function<boost::asio::awaitable<std::optional<std::string>>(std::string url)>;

// The keys of the configured issuers: the inline sets as configured, the URL sets fetched on
// first use and again when a JWT names a `kid` they lack, at most once per
// `jwks_refresh_interval` per URL (an attacker's stream of made-up kids costs one fetch a
// minute, not one each). Thread-safe.
class JwksCache {
public:
    JwksCache(const CdsSettings& settings, JwksFetch fetch, WallClock now);

    // The key `kid` of `issuer` from the set at `url` (one of the issuer's jwks_urls), or from
    // its inline set when `url` is empty; nullptr when it has none by that id.
    boost::asio::awaitable<std::shared_ptr<const JsonWebKey>> Find(const CdsIssuer& issuer,
                                                                   std::string url,
                                                                   std::string kid);

    // How many times a URL was fetched (tests, metrics).
    std::uint64_t fetches() const;

private:
    struct UrlSet {
        std::vector<JsonWebKey> keys;
        std::optional<TimePoint> fetched_at;
    };
    static std::shared_ptr<const JsonWebKey> Lookup(const std::vector<JsonWebKey>& keys,
                                                    std::string_view kid);

    const CdsSettings& settings_;
    JwksFetch fetch_;
    WallClock now_;
    std::map<std::string, std::vector<JsonWebKey>> inline_;  // by issuer
    mutable std::mutex mutex_;
    std::map<std::string, UrlSet> urls_;
    std::uint64_t fetches_ = 0;
};

}  // namespace microcare::adapter
