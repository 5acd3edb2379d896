// "Acknowledge only what is on disk": a child process enqueues jobs without end and reports
// every acknowledged job id through a pipe; it is SIGKILLed in mid-stream, and every job it
// acknowledged must be in the database when it is opened again.
//
// A killed process loses what is in its memory, not what the kernel holds, so this proves that
// callbacks come after COMMIT; surviving a power cut is what synchronous=FULL adds on top, and no
// unit test can cut the power.
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "adapter/store/sqlite_job_store.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"

namespace microcare::adapter {
namespace {

using test_support::MakeJob;
using test_support::TempDirectory;
using test_support::ValueOf;

// Written whole to the pipe: 16 bytes is below PIPE_BUF, so a write is never torn by the kill.
struct Ack {
    std::int64_t index = 0;
    std::int64_t job_id = 0;
};

constexpr std::size_t kKillAfter = 400;  // acknowledgements seen before the kill
constexpr int kInFlight = 64;            // enqueues the child keeps pending: several per commit
constexpr int kReadTimeoutMillis = 60'000;

std::string TriggerOf(std::int64_t index) { return "trigger-" + std::to_string(index); }
std::string EncounterOf(std::int64_t index) { return "Encounter/" + std::to_string(index % 7); }

// The child: enqueues until killed. Never returns; _exit keeps it out of GoogleTest's exit path.
[[noreturn]] void EnqueueUntilKilled(const std::string& path, int ack_fd) {
    StoreOptions options;
    options.synchronous_full = true;
    auto store = JobStore::Open(path, options);
    if (!store) {
        ::_exit(10);
    }
    std::mutex mutex;
    std::condition_variable space;
    int in_flight = 0;
    for (std::int64_t index = 0; index < 10'000'000; ++index) {
        {
            std::unique_lock lock(mutex);
            space.wait(lock, [&] { return in_flight < kInFlight; });
            ++in_flight;
        }
        (*store)->EnqueueAsync(
            MakeJob(TriggerOf(index), EncounterOf(index)), [&, index](Result<Enqueued> result) {
                if (!result || !result->created) {
                    ::_exit(11);
                }
                const Ack ack{index, result->job_id};
                if (::write(ack_fd, &ack, sizeof ack) != static_cast<ssize_t>(sizeof ack)) {
                    ::_exit(12);
                }
                {
                    std::lock_guard lock(mutex);
                    --in_flight;
                }
                space.notify_one();
            });
    }
    ::_exit(13);
}

// Reads whole Acks from the pipe, with a deadline so that a stuck child fails the test instead
// of hanging it.
class AckReader {
public:
    explicit AckReader(int fd) : fd_(fd) {}

    // Appends what arrives next; false at end of stream, on error, or at the deadline.
    bool ReadMore(std::vector<Ack>& acks) {
        pollfd ready{fd_, POLLIN, 0};
        if (::poll(&ready, 1, kReadTimeoutMillis) <= 0) {
            return false;
        }
        char chunk[4096];
        const ssize_t got = ::read(fd_, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR) {
            return true;
        }
        if (got <= 0) {
            return false;
        }
        pending_.append(chunk, static_cast<std::size_t>(got));
        std::size_t used = 0;
        for (; pending_.size() - used >= sizeof(Ack); used += sizeof(Ack)) {
            Ack ack;
            std::memcpy(&ack, pending_.data() + used, sizeof ack);
            acks.push_back(ack);
        }
        pending_.erase(0, used);
        return true;
    }

private:
    int fd_;
    std::string pending_;
};

// Kills and reaps the child on every way out of the test, failed assertions included.
class ChildProcess {
public:
    explicit ChildProcess(pid_t pid) : pid_(pid) {}
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess() { KillAndWait(); }

    int KillAndWait() {
        int status = 0;
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            pid_ = -1;
        }
        return status;
    }

private:
    pid_t pid_;
};

TEST(SqliteJobStoreDurabilityTest, EveryAcknowledgedJobSurvivesSigkill) {
    TempDirectory dir;
    const std::string path = dir.File("jobs.db");
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);

    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(fds[0]);
        EnqueueUntilKilled(path, fds[1]);
    }
    ::close(fds[1]);
    ChildProcess child(pid);
    AckReader reader(fds[0]);

    std::vector<Ack> acks;
    while (acks.size() < kKillAfter && reader.ReadMore(acks)) {
    }
    ASSERT_GE(acks.size(), kKillAfter) << "the child stopped acknowledging";
    const int status = child.KillAndWait();
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the child should have died of the kill, in mid-stream";
    // Acknowledgements written before the kill are still in the pipe: they count too.
    while (reader.ReadMore(acks)) {
    }
    ::close(fds[0]);

    StoreOptions options;
    auto store = SqliteJobStore::Open(path, options);
    ASSERT_TRUE(store) << store.error().message();
    std::set<std::int64_t> ids;
    for (const Ack& ack : acks) {
        const Job job = ValueOf((*store)->Get(ack.job_id));
        EXPECT_EQ(job.trigger_key, TriggerOf(ack.index)) << "job " << ack.job_id;
        EXPECT_EQ(job.encounter, EncounterOf(ack.index)) << "job " << ack.job_id;
        EXPECT_EQ(job.state, JobState::kQueued);
        ids.insert(ack.job_id);
    }
    EXPECT_EQ(ids.size(), acks.size()) << "two acknowledgements named the same job";
    // Commits whose callbacks the kill cut short may add more: never fewer.
    EXPECT_GE(ValueOf((*store)->CountByState(JobState::kQueued)), acks.size());
    ::testing::Test::RecordProperty("acknowledged_before_reopen", static_cast<int>(acks.size()));
}

}  // namespace
}  // namespace microcare::adapter
