// Enqueue throughput with group commit, from 64 producer threads: a measurement, not a test
// (no assertion on time). Disabled by default; run it with
//   microcare_store_tests --gtest_also_run_disabled_tests --gtest_filter='*Throughput*'
// and TEST_TMPDIR pointing at the disk the service will use (fsync cost is the disk's).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <latch>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "adapter/store/sqlite_job_store.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"

namespace microcare::adapter {
namespace {

using test_support::MakeJob;
using test_support::TempDirectory;

constexpr int kProducers = 64;

struct Run {
    const char* name;
    bool synchronous_full;
    int per_producer;  // enqueues each producer makes
    int window;        // enqueues a producer keeps pending (1: waits for each acknowledgement)
};

void Measure(const Run& run) {
    TempDirectory dir;
    StoreOptions options;
    options.synchronous_full = run.synchronous_full;
    auto opened = SqliteJobStore::Open(dir.File("bench.db"), options);
    ASSERT_TRUE(opened) << opened.error().message();
    SqliteJobStore& store = **opened;

    std::atomic<int> failures{0};
    std::latch start(kProducers + 1);
    std::vector<std::thread> producers;
    for (int p = 0; p < kProducers; ++p) {
        producers.emplace_back([&, p] {
            std::mutex mutex;
            std::condition_variable space;
            int pending = 0;
            start.arrive_and_wait();
            for (int i = 0; i < run.per_producer; ++i) {
                {
                    std::unique_lock lock(mutex);
                    space.wait(lock, [&] { return pending < run.window; });
                    ++pending;
                }
                const std::string key = "p" + std::to_string(p) + "-" + std::to_string(i);
                store.EnqueueAsync(MakeJob(key, "Encounter/" + std::to_string(p)),
                                   [&](Result<Enqueued> result) {
                                       failures += result ? 0 : 1;
                                       // Notify under the lock: once pending reaches 0 the
                                       // producer may return and take `space` with it.
                                       std::lock_guard lock(mutex);
                                       --pending;
                                       space.notify_one();
                                   });
            }
            std::unique_lock lock(mutex);
            space.wait(lock, [&] { return pending == 0; });
        });
    }
    const auto stats_before = store.stats();
    start.arrive_and_wait();
    const auto began = std::chrono::steady_clock::now();
    for (auto& producer : producers) {
        producer.join();
    }
    const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - began;
    const auto stats = store.stats();
    EXPECT_EQ(failures.load(), 0);

    const double total = static_cast<double>(kProducers) * run.per_producer;
    const auto commits = stats.commits - stats_before.commits;
    std::printf("%-34s %8.0f enqueues/s  (%6.0f in %.2f s, %5llu commits, %.1f per commit)\n",
                run.name, total / elapsed.count(), total, elapsed.count(),
                static_cast<unsigned long long>(commits),
                commits > 0 ? static_cast<double>(stats.write_tasks - stats_before.write_tasks) /
                                  static_cast<double>(commits)
                            : 0.0);
}

TEST(SqliteJobStoreThroughput, DISABLED_Enqueue64Producers) {
    std::printf("%d producers calling EnqueueAsync\n", kProducers);
    Measure({"FULL, each waits for its ack", true, 500, 1});
    Measure({"FULL, 16 pending per producer", true, 1000, 16});
    Measure({"NORMAL, each waits for its ack", false, 500, 1});
    Measure({"NORMAL, 16 pending per producer", false, 1000, 16});
}

}  // namespace
}  // namespace microcare::adapter
