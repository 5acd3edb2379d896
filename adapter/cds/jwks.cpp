#include "adapter/cds/jwks.hpp"
namespace microcare::adapter {

JwksCache::JwksCache(const CdsSettings& settings, JwksFetch fetch, WallClock now)
    : settings_(settings), fetch_(std::move(fetch)), now_(std::move(now)) {
    for (const CdsIssuer& issuer : settings_.issuers) {
        if (issuer.jwks.empty()) continue;
        // Validated by the configuration's reader: a set that does not parse never gets here.
        inline_[issuer.issuer] = ParseJwks(issuer.jwks).value_or(std::vector<JsonWebKey>{});
    }
}

std::shared_ptr<const JsonWebKey> JwksCache::Lookup(const std::vector<JsonWebKey>& keys,
                                                    std::string_view kid) {
    for (const JsonWebKey& key : keys) {
        if (key.kid == kid) return std::make_shared<const JsonWebKey>(key);
    }
    return nullptr;
}

boost::asio::awaitable<std::shared_ptr<const JsonWebKey>> JwksCache::Find(const CdsIssuer& issuer,
                                                                          std::string url,
                                                                          std::string kid) {
    if (url.empty()) {
        auto found = inline_.find(issuer.issuer);
        co_return found == inline_.end() ? nullptr : Lookup(found->second, kid);
    }
    {
        std::lock_guard lock(mutex_);
        UrlSet& set = urls_[url];
        if (auto key = Lookup(set.keys, kid)) co_return key;
        const TimePoint now = now_();
        if (set.fetched_at && now - *set.fetched_at < settings_.jwks_refresh_interval) {
            co_return nullptr;
        }
        // Taken before the fetch: requests arriving meanwhile do not fetch again.
        set.fetched_at = now;
        ++fetches_;
    }
    auto body = co_await fetch_(url);
    auto keys = body ? ParseJwks(*body) : std::nullopt;
    std::lock_guard lock(mutex_);
    UrlSet& set = urls_[url];
    // A failed fetch keeps the keys known before: an outage of the key server must not lock
    // every EHR out.
    if (keys) set.keys = std::move(*keys);
    co_return Lookup(set.keys, kid);
}

std::uint64_t JwksCache::fetches() const {
    std::lock_guard lock(mutex_);
    return fetches_;
}

}  // namespace microcare::adapter
