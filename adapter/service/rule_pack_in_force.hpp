#pragma once

#include <memory>
#include <mutex>
#include <utility>

#include "rules/rule_set.hpp"

namespace microcare::adapter {

// The rule pack the service applies now. A job takes a snapshot when it starts and keeps it to
// the end, so a reload never changes the rules under an assessment in progress; the old pack is
// freed when its last job ends.
class RulePackInForce {
public:
    explicit RulePackInForce(std::shared_ptr<const rules::RuleSet> pack) : pack_(std::move(pack)) {}

    std::shared_ptr<const rules::RuleSet> Snapshot() const {
        std::lock_guard lock(mutex_);
        return pack_;
    }
    void Replace(std::shared_ptr<const rules::RuleSet> pack) {
        std::lock_guard lock(mutex_);
        pack_.swap(pack);
        // The old pack (now in `pack`) is released outside the lock, possibly freeing it.
    }

private:
    mutable std::mutex mutex_;
    std::shared_ptr<const rules::RuleSet> pack_;
};

}  // namespace microcare::adapter
