// The statement wrapper's guarantees the store leans on: bad SQL is an error value, a failed
// bind stops the statement from running, and a reset statement starts over unbound.
#include "adapter/store/sqlite_statement.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <memory>

#include "tests/unit/adapter/store/store_test_support.hpp"

namespace microcare::adapter::detail {
namespace {

using test_support::ErrorOf;
using test_support::ValueOf;

struct CloseDb {
    void operator()(sqlite3* db) const { sqlite3_close(db); }
};

std::unique_ptr<sqlite3, CloseDb> MemoryDb() {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open(":memory:", &db), SQLITE_OK);
    return std::unique_ptr<sqlite3, CloseDb>(db);
}

TEST(SqliteStatementTest, BadSqlIsAnError) {
    auto db = MemoryDb();
    EXPECT_EQ(ErrorOf(SqliteStatement::Prepare(db.get(), "SELEC 1")), Error::kStoreFailed);
}

TEST(SqliteStatementTest, ReadsBoundValuesBack) {
    auto db = MemoryDb();
    auto statement = ValueOf(SqliteStatement::Prepare(db.get(), "SELECT ?1, ?2, ?3"));
    const std::int64_t big = std::numeric_limits<std::int64_t>::max();
    statement.Bind(1, big);
    statement.Bind(2, std::string_view("text with \0 inside", 18));
    statement.Bind(3, std::optional<std::int64_t>());
    ASSERT_TRUE(ValueOf(statement.Next()));
    EXPECT_EQ(statement.Int64(0), big);
    EXPECT_EQ(statement.Text(1), std::string("text with \0 inside", 18));
    EXPECT_EQ(statement.OptionalInt64(2), std::nullopt);
    EXPECT_FALSE(ValueOf(statement.Next()));
}

TEST(SqliteStatementTest, FailedBindKeepsTheStatementFromRunning) {
    auto db = MemoryDb();
    auto statement = ValueOf(SqliteStatement::Prepare(db.get(), "SELECT ?1"));
    statement.Bind(2, std::int64_t{1});  // no such parameter
    EXPECT_EQ(ErrorOf(statement.Next()), Error::kStoreFailed);

    // A reset forgets the failure along with the bindings.
    statement.Reset();
    statement.Bind(1, std::int64_t{7});
    ASSERT_TRUE(ValueOf(statement.Next()));
    EXPECT_EQ(statement.Int64(0), 7);
}

TEST(SqliteStatementTest, ResetOnExitUnbindsForTheNextUse) {
    auto db = MemoryDb();
    auto statement = ValueOf(SqliteStatement::Prepare(db.get(), "SELECT ?1"));
    {
        ResetOnExit reset(statement);
        statement.Bind(1, std::int64_t{5});
        ASSERT_TRUE(ValueOf(statement.Next()));
    }
    ASSERT_TRUE(ValueOf(statement.Next()));
    EXPECT_EQ(statement.OptionalInt64(0), std::nullopt);
}

}  // namespace
}  // namespace microcare::adapter::detail
