#include "adapter/audit/audit_log.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace microcare::adapter {
namespace {

class AuditLogTest : public ::testing::Test {
protected:
    void SetUp() override {
        path_ = ::testing::TempDir() + "audit-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".log";
        std::filesystem::remove(path_);
    }
    void Write(int records) {
        auto log = AuditLog::Open(path_);
        ASSERT_TRUE(log);
        for (int i = 0; i < records; ++i) {
            (*log)->Append("job", {{"job", std::to_string(i)}, {"result", "done"}});
        }
    }
    std::vector<std::string> Lines() {
        std::ifstream in(path_);
        std::vector<std::string> lines;
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        return lines;
    }
    void Rewrite(const std::vector<std::string>& lines) {
        std::ofstream out(path_, std::ios::trunc);
        for (const auto& line : lines) out << line << "\n";
    }
    std::string path_;
};

TEST_F(AuditLogTest, AnIntactChainVerifiesAcrossReopening) {
    Write(3);
    Write(2);  // a restart continues the chain
    auto verdict = AuditLog::Verify(path_);
    ASSERT_TRUE(verdict);
    EXPECT_EQ(verdict->records, 5u);
    EXPECT_FALSE(verdict->first_bad_line);
}

TEST_F(AuditLogTest, AnEditedRecordIsFound) {
    Write(4);
    auto lines = Lines();
    auto at = lines[2].find("\"done\"");
    lines[2].replace(at, 6, "\"dead\"");
    Rewrite(lines);
    auto verdict = AuditLog::Verify(path_);
    ASSERT_TRUE(verdict);
    EXPECT_EQ(verdict->first_bad_line, 3u);
    EXPECT_NE(verdict->problem.find("changed"), std::string::npos);
}

TEST_F(AuditLogTest, ARemovedRecordIsFound) {
    Write(4);
    auto lines = Lines();
    lines.erase(lines.begin() + 1);
    Rewrite(lines);
    EXPECT_EQ(AuditLog::Verify(path_)->first_bad_line, 2u);
}

TEST_F(AuditLogTest, ReorderedRecordsAreFound) {
    Write(4);
    auto lines = Lines();
    std::swap(lines[1], lines[2]);
    Rewrite(lines);
    EXPECT_EQ(AuditLog::Verify(path_)->first_bad_line, 2u);
}

TEST_F(AuditLogTest, ADamagedLogIsNotSilentlyExtended) {
    Write(2);
    std::ofstream(path_, std::ios::app) << "{not json\n";
    EXPECT_FALSE(AuditLog::Open(path_));
}

TEST(Sha256Hex, KnownVector) {
    EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

}  // namespace
}  // namespace microcare::adapter
