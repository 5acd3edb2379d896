#pragma once

// A trail in a fresh directory for each test, with a key, a clock the test moves, and helpers
// that tamper with its files as an intruder would.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "adapter/audit/audit_file_set.hpp"
#include "adapter/audit/audit_log.hpp"
#include "adapter/audit/audit_verify.hpp"

namespace microcare::adapter::testing {

inline constexpr const char* kTestKey = "0123456789abcdef0123456789abcdef-audit-test-key";

class AuditTrailTest : public ::testing::Test {
protected:
    void SetUp() override {
        static std::mt19937_64 random{std::random_device{}()};
        dir_ = std::filesystem::temp_directory_path() /
               ("microcare-audit-" + std::to_string(random()));
        std::filesystem::create_directories(dir_);
        settings_.path = (dir_ / "audit.log").string();
        settings_.checkpoint_path = (dir_ / "store" / "audit.log.checkpoint").string();
        settings_.key = kTestKey;
        settings_.key_file = "test";
        settings_.rotate_bytes = 0;
        options_.clock = [this] { return now_; };
    }
    void TearDown() override {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    std::unique_ptr<AuditLog> OpenLog() {
        std::string problem;
        auto log = AuditLog::Open(settings_, options_, &problem);
        EXPECT_TRUE(log) << problem;
        return log ? std::move(*log) : nullptr;
    }

    // Opens the trail, appends `records` job records and closes it.
    void Write(int records) {
        auto log = OpenLog();
        ASSERT_TRUE(log);
        for (int i = 0; i < records; ++i) {
            ASSERT_TRUE(log->Append("job", {{"job", std::to_string(i)}, {"result", "done"}}));
        }
    }

    std::vector<ChainKey> Keys() const {
        std::vector<ChainKey> keys;
        if (!settings_.key.empty()) keys.push_back(*ChainKey::Hmac(settings_.key));
        return keys;
    }

    AuditReport Verify() const {
        return VerifyTrail(TrailToVerify{settings_.path, Keys(), CheckpointPathOf(settings_), {}, {}});
    }

    std::vector<std::string> Lines(const std::string& path = {}) const {
        std::ifstream in(path.empty() ? settings_.path : path, std::ios::binary);
        std::vector<std::string> lines;
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        return lines;
    }
    void Rewrite(const std::vector<std::string>& lines, const std::string& path = {}) const {
        std::ofstream out(path.empty() ? settings_.path : path, std::ios::binary | std::ios::trunc);
        for (const auto& line : lines) out << line << "\n";
    }

    // The problems' kinds, for messages when a test fails.
    static std::string Describe(const AuditReport& report) {
        std::string all;
        for (const AuditFinding& f : report.problems) {
            all += std::string(ToString(f.kind)) + " " + f.file + ":" + std::to_string(f.line) +
                   " " + f.message + "\n";
        }
        return all.empty() ? "(intact)" : all;
    }

    static bool Has(const AuditReport& report, AuditFinding::Kind kind, std::size_t line = 0) {
        for (const AuditFinding& f : report.problems) {
            if (f.kind == kind && (line == 0 || f.line == line)) return true;
        }
        return false;
    }

    std::filesystem::path dir_;
    AuditSettings settings_;
    AuditLog::Options options_;
    std::chrono::system_clock::time_point now_ =
        std::chrono::sys_days{std::chrono::year{2026} / 3 / 14} + std::chrono::hours{9};
};

}  // namespace microcare::adapter::testing
