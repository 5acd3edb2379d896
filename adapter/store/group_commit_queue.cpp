#include "adapter/store/group_commit_queue.hpp"

#include <algorithm>

#include "adapter/thread_name.hpp"

namespace microcare::adapter::detail {

GroupCommitQueue::GroupCommitQueue(TransactionHooks& hooks, std::chrono::microseconds max_delay,
                                   std::size_t max_batch)
    : hooks_(hooks),
      max_delay_(max_delay),
      max_batch_(std::max<std::size_t>(max_batch, 1)),
      company_(max_batch_) {}

GroupCommitQueue::~GroupCommitQueue() { Close(); }

void GroupCommitQueue::Start() {
    thread_ = std::thread([this] {
        NameThisThread("microcare-store");
        Run();
    });
    thread_id_ = thread_.get_id();
}

void GroupCommitQueue::Close() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_one();
    if (std::this_thread::get_id() == thread_id_.load()) {
        // Called from a callback: the thread drains the queue and ends after it returns.
        return;
    }
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable()) {
        thread_.join();
    }
}

GroupCommitQueue::Stats GroupCommitQueue::stats() const {
    return {commits_.load(std::memory_order_relaxed), write_tasks_.load(std::memory_order_relaxed)};
}

void GroupCommitQueue::Push(std::unique_ptr<Task> task) {
    {
        std::lock_guard lock(mutex_);
        if (!stopping_) {
            queued_writes_ += task->writes() ? 1 : 0;
            queue_.push_back(std::move(task));
        }
    }
    if (task) {
        task->Fail(Error::kShuttingDown);
        return;
    }
    wake_.notify_one();
}

void GroupCommitQueue::Run() {
    std::vector<std::unique_ptr<Task>> batch;
    batch.reserve(max_batch_);
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return !queue_.empty() || stopping_; });
            if (queue_.empty()) {
                break;  // stopping, and everything accepted has been done
            }
            if (queued_writes_ > 0 && queue_.size() < max_batch_ && !stopping_ &&
                max_delay_.count() > 0) {
                // A commit costs one fsync however much it carries: a short wait lets writers
                // arriving now share it, until as many are queued as the last batch took.
                // Writers arriving during a commit need no wait, they are all taken by the next
                // one.
                const auto deadline = std::chrono::steady_clock::now() + max_delay_;
                wake_.wait_until(lock, deadline, [this] {
                    return company_.Enough(queued_writes_) || queue_.size() >= max_batch_ ||
                           stopping_;
                });
            }
            const std::size_t writes_before = queued_writes_;
            while (!queue_.empty() && batch.size() < max_batch_) {
                queued_writes_ -= queue_.front()->writes() ? 1 : 0;
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
            company_.Took(writes_before - queued_writes_);
        }
        RunBatch(batch);
        batch.clear();
    }
    hooks_.Finish();
}

void GroupCommitQueue::RunBatch(std::vector<std::unique_ptr<Task>>& batch) {
    if (!hooks_.Ready()) {
        for (auto& task : batch) {
            task->Fail(Error::kStoreFailed);
        }
        return;
    }
    const bool writes =
        std::any_of(batch.begin(), batch.end(), [](const auto& task) { return task->writes(); });
    if (!writes) {
        for (auto& task : batch) {
            task->Execute();
            task->Deliver();
        }
        return;
    }
    if (!hooks_.Begin()) {
        AbortBatch(batch);
        return;
    }
    for (auto& task : batch) {
        if (!task->writes()) {
            // Reads share the transaction: they see the batch's earlier writes, as the caller
            // who queued them after those writes expects.
            task->Execute();
        } else {
            if (!hooks_.Savepoint()) {
                AbortBatch(batch);
                return;
            }
            if (!task->Execute() && !hooks_.RollbackToSavepoint()) {
                AbortBatch(batch);
                return;
            }
            if (!hooks_.ReleaseSavepoint()) {
                AbortBatch(batch);
                return;
            }
        }
        if (!hooks_.InTransaction()) {
            AbortBatch(batch);
            return;
        }
    }
    if (!hooks_.Commit()) {
        AbortBatch(batch);
        return;
    }
    commits_.fetch_add(1, std::memory_order_relaxed);
    write_tasks_.fetch_add(
        std::count_if(batch.begin(), batch.end(), [](const auto& task) { return task->writes(); }),
        std::memory_order_relaxed);
    for (auto& task : batch) {
        task->Deliver();
    }
}

void GroupCommitQueue::AbortBatch(std::vector<std::unique_ptr<Task>>& batch) {
    if (hooks_.InTransaction()) {
        hooks_.Rollback();
    }
    // Nothing in the batch is committed: no task of it may be reported as done.
    for (auto& task : batch) {
        task->Fail(Error::kStoreFailed);
    }
}

}  // namespace microcare::adapter::detail
