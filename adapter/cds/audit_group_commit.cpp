#include "adapter/cds/audit_group_commit.hpp"

#include <boost/asio/post.hpp>
#include <memory>

#include "adapter/async_util.hpp"

namespace microcare::adapter {

// A plain function, not a coroutine: g++ 12 mis-moves objects captured by value into lambdas
// inside co_await expressions, so the record travels in a shared_ptr.
boost::asio::awaitable<Result<void>> AuditGroupCommit::Append(AuditLog::Record record) {
    return AwaitCallback<Result<void>>(
        [this, shared = std::make_shared<AuditLog::Record>(std::move(record))](auto done) {
            Enqueue(Waiter{std::move(*shared), std::move(done)});
        });
}

void AuditGroupCommit::Enqueue(Waiter waiter) {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(waiter));
    if (writing_) return;
    writing_ = true;
    boost::asio::post(blocking_, [this] { Drain(); });
}

void AuditGroupCommit::Drain() {
    for (;;) {
        std::vector<Waiter> batch;
        {
            std::lock_guard lock(mutex_);
            if (queue_.empty()) {
                writing_ = false;
                return;
            }
            batch.swap(queue_);
        }
        std::vector<AuditLog::Record> records;
        records.reserve(batch.size());
        for (Waiter& waiter : batch) records.push_back(std::move(waiter.record));
        const Result<void> written = audit_.AppendBatch(std::move(records));
        for (Waiter& waiter : batch) waiter.done(written);
    }
}

}  // namespace microcare::adapter
