#pragma once

#include <algorithm>
#include <cstddef>

namespace microcare::adapter {

// When a group commit (the store's, the audit trail's) has waited long enough for company: once
// as many writes are queued as its last batch carried, or `most`. Under a steady load about
// that many arrive while a commit syncs, so waiting for more only leaves the writer idle; when
// the load grows, batches grow by themselves (what arrives during a commit goes in the next),
// and when it falls the caller's time bound ends the wait.
class BatchCompany {
public:
    explicit BatchCompany(std::size_t most) : most_(std::max<std::size_t>(most, 1)) {}

    bool Enough(std::size_t queued) const {
        return queued >= std::clamp<std::size_t>(last_, 1, most_);
    }
    void Took(std::size_t writes) { last_ = writes; }

private:
    std::size_t most_;
    std::size_t last_ = 0;
};

}  // namespace microcare::adapter
