#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "adapter/store/job_store.hpp"

namespace microcare::adapter::test_support {

// A fresh directory under GoogleTest's temporary directory (TEST_TMPDIR when set), removed with
// everything in it at the end of the test. The name carries the pid and a counter so that
// parallel ctest runs, and several stores in one test, never share a database.
class TempDirectory {
public:
    TempDirectory() {
        static std::atomic<int> counter{0};
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = "microcare_store_";
        name += info != nullptr ? info->name() : "test";
        name += "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
        path_ = std::filesystem::path(::testing::TempDir()) / name;
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
    }
    TempDirectory(const TempDirectory&) = delete;
    TempDirectory& operator=(const TempDirectory&) = delete;
    ~TempDirectory() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }

    std::string File(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

// The project error a result failed with, or nothing when it succeeded: comparable in one
// EXPECT_EQ, and a foreign error category shows up as a failure of its own.
template <typename T>
std::optional<Error> ErrorOf(const Result<T>& result) {
    if (result) {
        return std::nullopt;
    }
    EXPECT_EQ(&result.error().category(), &ErrorCategory()) << result.error().message();
    return static_cast<Error>(result.error().value());
}

// The value of a result that must have succeeded (a default value, and a test failure, if not).
template <typename T>
T ValueOf(Result<T> result) {
    if (!result) {
        ADD_FAILURE() << "call failed: " << result.error().message();
        return T{};
    }
    return std::move(*result);
}

inline NewJob MakeJob(std::string trigger_key, std::string encounter = "Encounter/1") {
    NewJob job;
    job.trigger_key = std::move(trigger_key);
    job.encounter = std::move(encounter);
    job.kind = "process-message";
    job.payload = R"({"resourceType":"Bundle"})";
    return job;
}

}  // namespace microcare::adapter::test_support
