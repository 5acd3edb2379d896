#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "adapter/client/connection.hpp"

namespace microcare::adapter::detail {

// Idle keep-alive connections by pool key (scheme, host, port). A connection is either in here
// or owned by exactly one request, never both: Acquire hands it out, Release takes it back.
class ConnectionPool {
public:
    explicit ConnectionPool(std::size_t max_idle_per_key) : max_idle_per_key_(max_idle_per_key) {}

    // The most recently released idle connection that still looks usable, or null. Connections
    // found closed by the server on the way are dropped.
    std::unique_ptr<Connection> Acquire(const std::string& key);

    // Keeps `connection` for reuse, unless the key already holds max_idle_per_key connections,
    // in which case it is closed.
    void Release(const std::string& key, std::unique_ptr<Connection> connection);

    std::size_t IdleCount(const std::string& key) const;

private:
    const std::size_t max_idle_per_key_;
    mutable std::mutex mutex_;
    // Most recently used last: taking from the back reuses the connection least likely to have
    // been dropped by the server's idle timeout, and lets the older ones age out.
    std::map<std::string, std::vector<std::unique_ptr<Connection>>, std::less<>> idle_;
};

}  // namespace microcare::adapter::detail
