#include "adapter/client/connection_pool.hpp"

#include <utility>

namespace microcare::adapter::detail {

std::unique_ptr<Connection> ConnectionPool::Acquire(const std::string& key) {
    // Closed connections are destroyed outside the lock: closing a socket is a system call.
    std::vector<std::unique_ptr<Connection>> dead;
    std::unique_ptr<Connection> found;
    {
        std::lock_guard lock(mutex_);
        auto it = idle_.find(key);
        if (it == idle_.end()) return nullptr;
        auto& stack = it->second;
        while (!stack.empty()) {
            std::unique_ptr<Connection> candidate = std::move(stack.back());
            stack.pop_back();
            if (candidate->LooksReusable()) {
                found = std::move(candidate);
                break;
            }
            dead.push_back(std::move(candidate));
        }
        if (stack.empty()) idle_.erase(it);
    }
    return found;
}

void ConnectionPool::Release(const std::string& key, std::unique_ptr<Connection> connection) {
    if (!connection) return;
    {
        std::lock_guard lock(mutex_);
        auto& stack = idle_[key];
        if (stack.size() < max_idle_per_key_) {
            stack.push_back(std::move(connection));
            return;
        }
        if (stack.empty()) idle_.erase(key);
    }
    // `connection` closes here, outside the lock.
}

std::size_t ConnectionPool::IdleCount(const std::string& key) const {
    std::lock_guard lock(mutex_);
    auto it = idle_.find(key);
    return it == idle_.end() ? 0 : it->second.size();
}

}  // namespace microcare::adapter::detail
