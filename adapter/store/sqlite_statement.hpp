#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "adapter/error.hpp"

namespace microcare::adapter::detail {

// A prepared statement, compiled once per connection and reused for every call: the store runs
// the same dozen statements thousands of times a second, and re-parsing SQL would cost more
// than the work itself.
//
// Binding never fails loudly: a failed bind is remembered and reported by the next Step, so
// call sites stay short and a half-bound statement can never run.
class SqliteStatement {
public:
    SqliteStatement() = default;
    SqliteStatement(const SqliteStatement&) = delete;
    SqliteStatement& operator=(const SqliteStatement&) = delete;
    SqliteStatement(SqliteStatement&& other) noexcept;
    SqliteStatement& operator=(SqliteStatement&& other) noexcept;
    ~SqliteStatement();

    static Result<SqliteStatement> Prepare(sqlite3* db, std::string_view sql);

    void Bind(int index, std::int64_t value);
    void Bind(int index, std::string_view value);
    void Bind(int index, std::optional<std::int64_t> value);

    // One step: true when a row is ready to read, false when the statement is done.
    Result<bool> Next();
    // Steps a statement that returns no rows (or whose rows do not matter) to its end.
    Result<void> Run();

    std::int64_t Int64(int column) const;
    std::optional<std::int64_t> OptionalInt64(int column) const;
    std::string Text(int column) const;

    // Ready for the next use, with no parameters bound.
    void Reset();

private:
    explicit SqliteStatement(sqlite3_stmt* stmt) : stmt_(stmt) {}

    sqlite3_stmt* stmt_ = nullptr;
    bool bind_failed_ = false;
};

// Resets a statement when the scope ends, on every path: a statement left part-way through its
// rows keeps a read snapshot open, and an open snapshot stops WAL checkpoints from completing.
class ResetOnExit {
public:
    explicit ResetOnExit(SqliteStatement& statement) : statement_(statement) {}
    ResetOnExit(const ResetOnExit&) = delete;
    ResetOnExit& operator=(const ResetOnExit&) = delete;
    ~ResetOnExit() { statement_.Reset(); }

private:
    SqliteStatement& statement_;
};

}  // namespace microcare::adapter::detail
