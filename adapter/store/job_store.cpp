#include "adapter/store/job_store.hpp"

#include <future>

#include "adapter/store/pg_job_store.hpp"
#include "adapter/store/sqlite_job_store.hpp"

namespace microcare::adapter {

std::string_view ToString(JobState state) {
    switch (state) {
        case JobState::kQueued:
            return "queued";
        case JobState::kRunning:
            return "running";
        case JobState::kDone:
            return "done";
        case JobState::kDead:
            return "dead";
    }
    return "queued";
}

Result<std::unique_ptr<JobStore>> JobStore::Open(const std::string& location,
                                                 const StoreOptions& options) {
    if (IsPostgresUrl(location)) {
        auto store = PgJobStore::Open(location, options);
        if (!store) {
            return store.error();
        }
        return std::unique_ptr<JobStore>(std::move(*store));
    }
    auto store = SqliteJobStore::Open(location, options);
    if (!store) {
        return store.error();
    }
    return std::unique_ptr<JobStore>(std::move(*store));
}

Result<SchemaMigration> JobStore::Migrate(const std::string& location) {
    return IsPostgresUrl(location) ? PgJobStore::Migrate(location)
                                   : SqliteJobStore::Migrate(location);
}

namespace {

// The blocking form of an asynchronous call: starts it and waits for its callback.
template <typename T, typename Start>
Result<T> Wait(Start start) {
    std::promise<Result<T>> promise;
    auto future = promise.get_future();
    start([&promise](Result<T> result) { promise.set_value(std::move(result)); });
    return future.get();
}

}  // namespace

Result<Enqueued> JobStore::Enqueue(NewJob job) {
    return Wait<Enqueued>([&](auto done) { EnqueueAsync(std::move(job), std::move(done)); });
}

Result<std::int64_t> JobStore::LastEventNumber(const std::string& subscription) {
    return Wait<std::int64_t>(
        [&](auto done) { LastEventNumberAsync(subscription, std::move(done)); });
}

Result<std::vector<Job>> JobStore::Lease(TimePoint now, std::chrono::milliseconds lease,
                                         std::size_t max) {
    return Wait<std::vector<Job>>([&](auto done) { LeaseAsync(now, lease, max, std::move(done)); });
}

Result<std::size_t> JobStore::RequeueExpired(TimePoint now) {
    return Wait<std::size_t>([&](auto done) { RequeueExpiredAsync(now, std::move(done)); });
}

Result<void> JobStore::ExtendLease(std::int64_t id, int attempt, TimePoint until) {
    return Wait<void>([&](auto done) { ExtendLeaseAsync(id, attempt, until, std::move(done)); });
}

Result<void> JobStore::Complete(std::int64_t id, const std::string& outcome,
                                std::optional<int> attempt) {
    return Wait<void>([&](auto done) { CompleteAsync(id, outcome, attempt, std::move(done)); });
}

Result<void> JobStore::RetryLater(std::int64_t id, TimePoint next_attempt, const std::string& error,
                                  std::optional<int> attempt) {
    return Wait<void>(
        [&](auto done) { RetryLaterAsync(id, next_attempt, error, attempt, std::move(done)); });
}

Result<void> JobStore::DeadLetter(std::int64_t id, const std::string& reason,
                                  const std::string& outcome, std::optional<int> attempt) {
    return Wait<void>(
        [&](auto done) { DeadLetterAsync(id, reason, outcome, attempt, std::move(done)); });
}

}  // namespace microcare::adapter
