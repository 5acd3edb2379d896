// AuditLog::AppendAsync: records queued while the trail syncs share the next sync, a failed
// batch fails every caller in it, and Close writes what was queued.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "adapter/audit/audit_log.hpp"
#include "tests/unit/adapter/audit/audit_test_trail.hpp"
#include "tests/unit/adapter/audit/full_disk.hpp"

namespace microcare::adapter {
namespace {

// The real file, counting its appends (each one a write and an fdatasync); while the gate is
// shut, an append waits for it, as a slow disk would keep the writer busy.
class GatedFile final : public AuditFile {
public:
    struct Gate {
        std::mutex mutex;
        std::condition_variable changed;
        bool open = true;
        bool waiting = false;  // an append is held at the gate
        std::atomic<int> appends{0};
    };
    GatedFile(std::unique_ptr<AuditFile> file, std::shared_ptr<Gate> gate)
        : file_(std::move(file)), gate_(std::move(gate)) {}

    Result<void> Append(std::string_view bytes) override {
        {
            std::unique_lock lock(gate_->mutex);
            gate_->waiting = true;
            gate_->changed.notify_all();
            gate_->changed.wait(lock, [this] { return gate_->open; });
            gate_->waiting = false;
        }
        ++gate_->appends;
        return file_->Append(bytes);
    }
    Result<void> Truncate(std::uint64_t size) override { return file_->Truncate(size); }
    Result<std::uint64_t> Size() override { return file_->Size(); }

private:
    std::unique_ptr<AuditFile> file_;
    std::shared_ptr<Gate> gate_;
};

// What the callbacks of AppendAsync said, waited for from the test's thread.
class Outcomes {
public:
    AuditLog::Done Next() {
        return [this](Result<void> result) {
            std::lock_guard lock(mutex_);
            results_.push_back(result ? boost::system::error_code() : result.error());
            changed_.notify_all();
        };
    }
    std::vector<boost::system::error_code> WaitFor(std::size_t count) {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return results_.size() >= count; });
        return results_;
    }

private:
    std::mutex mutex_;
    std::condition_variable changed_;
    std::vector<boost::system::error_code> results_;
};

class AuditGroupCommitTest : public testing::AuditTrailTest {
protected:
    void Gated() {
        options_.open_file =
            [gate = gate_](const std::string& path) -> Result<std::unique_ptr<AuditFile>> {
            auto file = OpenAuditFile(path);
            if (!file) return file.error();
            return std::unique_ptr<AuditFile>(new GatedFile(std::move(*file), gate));
        };
    }
    void Shut() {
        std::lock_guard lock(gate_->mutex);
        gate_->open = false;
    }
    void WaitUntilHeld() {
        std::unique_lock lock(gate_->mutex);
        gate_->changed.wait(lock, [this] { return gate_->waiting; });
    }
    void Open() {
        {
            std::lock_guard lock(gate_->mutex);
            gate_->open = true;
        }
        gate_->changed.notify_all();
    }
    static AuditLog::Record Job(int n) {
        return AuditLog::MakeRecord("job", {{"job", std::to_string(n)}, {"result", "done"}});
    }

    std::shared_ptr<GatedFile::Gate> gate_ = std::make_shared<GatedFile::Gate>();
    Outcomes outcomes_;
};

TEST_F(AuditGroupCommitTest, RecordsQueuedDuringASyncShareTheNextOne) {
    Gated();
    auto log = OpenLog();
    ASSERT_TRUE(log);
    const int before = gate_->appends;
    Shut();
    log->AppendAsync(Job(0), outcomes_.Next());
    WaitUntilHeld();  // the writer is in its first sync
    for (int i = 1; i <= 50; ++i) log->AppendAsync(Job(i), outcomes_.Next());
    Open();
    for (const auto& error : outcomes_.WaitFor(51)) EXPECT_FALSE(error) << error.message();
    EXPECT_EQ(gate_->appends - before, 2);  // the first record, then the fifty together
    ASSERT_TRUE(log->Close());
    const auto lines = Lines();
    ASSERT_EQ(lines.size(), 52u);  // audit-start, then the jobs in the order queued
    for (int i = 0; i <= 50; ++i) {
        EXPECT_NE(lines[i + 1].find("\"job\":\"" + std::to_string(i) + "\""), std::string::npos)
            << lines[i + 1];
    }
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
}

TEST_F(AuditGroupCommitTest, AFullDiskFailsEveryCallerOfTheBatchAndTheTrailResumesAfter) {
    auto full = std::make_shared<std::atomic<bool>>(false);
    options_.open_file = testing::FullDiskOpener(full);
    auto log = OpenLog();
    ASSERT_TRUE(log);
    ASSERT_TRUE(log->Append("job", {{"job", "before"}}));
    *full = true;
    for (int i = 0; i < 5; ++i) log->AppendAsync(Job(i), outcomes_.Next());
    for (const auto& error : outcomes_.WaitFor(5)) {
        EXPECT_EQ(error, boost::system::errc::no_space_on_device);
    }
    EXPECT_FALSE(log->health().writable);
    EXPECT_EQ(log->health().failed_appends, 5u);  // every record refused counts
    *full = false;
    log->AppendAsync(Job(5), outcomes_.Next());
    EXPECT_FALSE(outcomes_.WaitFor(6)[5]);
    EXPECT_TRUE(log->health().writable);
    ASSERT_TRUE(log->Close());
    const auto lines = Lines();
    ASSERT_EQ(lines.size(), 4u);  // audit-start, before, the resumption, job 5
    EXPECT_NE(lines[2].find("\"failedAppends\":\"5\""), std::string::npos) << lines[2];
    EXPECT_NE(lines[3].find("\"job\":\"5\""), std::string::npos) << lines[3];
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
}

TEST_F(AuditGroupCommitTest, CloseWritesWhatWasQueuedAndLaterRecordsAreRefused) {
    Gated();
    auto log = OpenLog();
    ASSERT_TRUE(log);
    Shut();
    log->AppendAsync(Job(0), outcomes_.Next());
    WaitUntilHeld();
    for (int i = 1; i < 10; ++i) log->AppendAsync(Job(i), outcomes_.Next());
    Open();
    ASSERT_TRUE(log->Close());
    const auto results = outcomes_.WaitFor(10);
    for (const auto& error : results) EXPECT_FALSE(error) << error.message();
    EXPECT_EQ(Lines().size(), 11u);
    log->AppendAsync(Job(10), outcomes_.Next());
    EXPECT_EQ(outcomes_.WaitFor(11)[10], Error::kShuttingDown);
    AuditReport report = Verify();
    EXPECT_TRUE(report.intact()) << Describe(report);
}

TEST_F(AuditGroupCommitTest, ReservedKeysAreRefusedWithoutReachingTheTrail) {
    auto log = OpenLog();
    ASSERT_TRUE(log);
    log->AppendAsync(AuditLog::MakeRecord("job", {{"seq", "7"}}), outcomes_.Next());
    EXPECT_EQ(outcomes_.WaitFor(1)[0], boost::system::errc::invalid_argument);
    ASSERT_TRUE(log->Close());
    EXPECT_EQ(Lines().size(), 1u);  // audit-start only
}

}  // namespace
}  // namespace microcare::adapter
