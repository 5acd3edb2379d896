#include "adapter/store/job_store.hpp"

#include <future>

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

Result<std::unique_ptr<JobStore>> JobStore::Open(const std::string& path,
                                                 const StoreOptions& options) {
    auto store = SqliteJobStore::Open(path, options);
    if (!store) {
        return store.error();
    }
    return std::unique_ptr<JobStore>(std::move(*store));
}

Result<Enqueued> JobStore::Enqueue(NewJob job) {
    std::promise<Result<Enqueued>> promise;
    auto future = promise.get_future();
    EnqueueAsync(std::move(job),
                 [&promise](Result<Enqueued> result) { promise.set_value(std::move(result)); });
    return future.get();
}

}  // namespace microcare::adapter
