#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "adapter/batch_company.hpp"
#include "adapter/error.hpp"

namespace microcare::adapter::detail {

// What a database does around a batch of writes. The group-commit queue is the same for every
// store (SQLite, PostgreSQL); only these statements differ. Each runs on the store's thread.
class TransactionHooks {
public:
    virtual ~TransactionHooks() = default;
    // Before every batch, reads included: false fails the batch (e.g. a lost connection that
    // could not be re-established; the next batch tries again).
    virtual bool Ready() { return true; }
    virtual bool Begin() = 0;
    virtual bool Savepoint() = 0;
    virtual bool RollbackToSavepoint() = 0;
    virtual bool ReleaseSavepoint() = 0;
    virtual bool Commit() = 0;
    // Rolls back an open transaction; a failure leaves it open and the next Begin fails.
    virtual void Rollback() = 0;
    // Some errors end the whole transaction by themselves (SQLite's disk full, a PostgreSQL
    // connection lost): the tasks before then are lost and must not be acknowledged.
    virtual bool InTransaction() = 0;
    // The thread's last act: the connection is released by the thread that used it.
    virtual void Finish() = 0;
};

// One thread of a store's own that runs every call as a task, in arrival order. Writes are
// group-committed: the thread takes what is queued (up to max_batch; once a write is pending it
// waits up to max_delay for company, see BatchCompany), runs it in one transaction, each write
// inside a savepoint of its own so that a failing task is undone alone, and only after COMMIT has
// returned does it call back. Nothing is acknowledged that is not committed.
class GroupCommitQueue {
public:
    struct Stats {
        std::uint64_t commits = 0;      // write transactions committed
        std::uint64_t write_tasks = 0;  // write calls those commits carried
    };

    GroupCommitQueue(TransactionHooks& hooks, std::chrono::microseconds max_delay,
                     std::size_t max_batch);
    GroupCommitQueue(const GroupCommitQueue&) = delete;
    GroupCommitQueue& operator=(const GroupCommitQueue&) = delete;
    ~GroupCommitQueue();

    // Starts the thread: once the owner (and the hooks) are fully built.
    void Start();

    // Queues a call. After Close, `done` runs at once on the calling thread with
    // Error::kShuttingDown.
    template <typename T>
    void Submit(bool writes, std::function<Result<T>()> body, std::function<void(Result<T>)> done);
    // The blocking form, for the command line and tests (never from a callback).
    template <typename T>
    Result<T> SubmitAndWait(bool writes, std::function<Result<T>()> body);

    // Waits for accepted calls, then stops the thread. Also safe from a callback (it then stops
    // the thread without waiting for it).
    void Close();
    Stats stats() const;

private:
    class Task;
    template <typename T>
    class Call;

    void Push(std::unique_ptr<Task> task);
    void Run();
    void RunBatch(std::vector<std::unique_ptr<Task>>& batch);
    void AbortBatch(std::vector<std::unique_ptr<Task>>& batch);

    TransactionHooks& hooks_;
    const std::chrono::microseconds max_delay_;
    const std::size_t max_batch_;

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::unique_ptr<Task>> queue_;  // guarded by mutex_
    std::size_t queued_writes_ = 0;            // guarded by mutex_
    BatchCompany company_;                     // guarded by mutex_
    bool stopping_ = false;                    // guarded by mutex_

    std::atomic<std::uint64_t> commits_{0};
    std::atomic<std::uint64_t> write_tasks_{0};

    std::mutex join_mutex_;  // two threads closing at once: one joins, the other waits for it
    std::thread thread_;
    std::atomic<std::thread::id> thread_id_;
};

// A unit of work on the store's thread.
class GroupCommitQueue::Task {
public:
    explicit Task(bool writes) : writes_(writes) {}
    virtual ~Task() = default;

    bool writes() const { return writes_; }
    // Runs the task's statements; false when it failed and whatever it wrote must be undone.
    virtual bool Execute() = 0;
    // Hands the result of Execute to the caller: for a write, only once it is committed.
    virtual void Deliver() = 0;
    // Tells the caller that the task did not (durably) happen.
    virtual void Fail(Error error) = 0;

private:
    const bool writes_;
};

template <typename T>
class GroupCommitQueue::Call final : public Task {
public:
    Call(bool writes, std::function<Result<T>()> body, std::function<void(Result<T>)> done)
        : Task(writes), body_(std::move(body)), done_(std::move(done)) {}

    bool Execute() override {
        try {
            result_ = body_();
        } catch (const std::exception&) {
            // Only allocation can throw here; the task fails alone, the store goes on.
            result_ = make_error_code(Error::kStoreFailed);
        }
        return result_.has_value();
    }
    void Deliver() override { done_(std::move(result_)); }
    void Fail(Error error) override { done_(make_error_code(error)); }

private:
    std::function<Result<T>()> body_;
    std::function<void(Result<T>)> done_;
    Result<T> result_{make_error_code(Error::kStoreFailed)};
};

template <typename T>
void GroupCommitQueue::Submit(bool writes, std::function<Result<T>()> body,
                              std::function<void(Result<T>)> done) {
    if (!done) {
        done = [](Result<T>) {};
    }
    Push(std::make_unique<Call<T>>(writes, std::move(body), std::move(done)));
}

template <typename T>
Result<T> GroupCommitQueue::SubmitAndWait(bool writes, std::function<Result<T>()> body) {
    std::promise<Result<T>> promise;
    auto future = promise.get_future();
    Submit<T>(writes, std::move(body),
              [&promise](Result<T> result) { promise.set_value(std::move(result)); });
    return future.get();
}

}  // namespace microcare::adapter::detail
