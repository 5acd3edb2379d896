#include "adapter/store/sqlite_statement.hpp"

#include <utility>

namespace microcare::adapter::detail {

SqliteStatement::SqliteStatement(SqliteStatement&& other) noexcept
    : stmt_(std::exchange(other.stmt_, nullptr)),
      bind_failed_(std::exchange(other.bind_failed_, false)) {}

SqliteStatement& SqliteStatement::operator=(SqliteStatement&& other) noexcept {
    if (this != &other) {
        sqlite3_finalize(stmt_);
        stmt_ = std::exchange(other.stmt_, nullptr);
        bind_failed_ = std::exchange(other.bind_failed_, false);
    }
    return *this;
}

SqliteStatement::~SqliteStatement() { sqlite3_finalize(stmt_); }

Result<SqliteStatement> SqliteStatement::Prepare(sqlite3* db, std::string_view sql) {
    sqlite3_stmt* stmt = nullptr;
    // PERSISTENT: the statement lives as long as the connection, so SQLite may keep it out of
    // its short-lived lookaside memory.
    const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK || stmt == nullptr) {
        sqlite3_finalize(stmt);
        return Error::kStoreFailed;
    }
    return SqliteStatement(stmt);
}

void SqliteStatement::Bind(int index, std::int64_t value) {
    bind_failed_ |= sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK;
}

void SqliteStatement::Bind(int index, std::string_view value) {
    // TRANSIENT copies the text: the caller's string may not outlive the step.
    bind_failed_ |= sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                                        SQLITE_UTF8) != SQLITE_OK;
}

void SqliteStatement::Bind(int index, std::optional<std::int64_t> value) {
    if (value) {
        Bind(index, *value);
    } else {
        bind_failed_ |= sqlite3_bind_null(stmt_, index) != SQLITE_OK;
    }
}

Result<bool> SqliteStatement::Next() {
    if (bind_failed_) {
        return Error::kStoreFailed;
    }
    switch (sqlite3_step(stmt_)) {
        case SQLITE_ROW:
            return true;
        case SQLITE_DONE:
            return false;
        default:
            return Error::kStoreFailed;
    }
}

Result<void> SqliteStatement::Run() {
    for (;;) {
        auto row = Next();
        if (!row) {
            return row.error();
        }
        if (!*row) {
            return {};
        }
    }
}

std::int64_t SqliteStatement::Int64(int column) const {
    return sqlite3_column_int64(stmt_, column);
}

std::optional<std::int64_t> SqliteStatement::OptionalInt64(int column) const {
    if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) {
        return std::nullopt;
    }
    return sqlite3_column_int64(stmt_, column);
}

std::string SqliteStatement::Text(int column) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (text == nullptr) {
        return {};
    }
    return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

void SqliteStatement::Reset() {
    // sqlite3_reset repeats the last step's error code; that error was already reported.
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    bind_failed_ = false;
}

}  // namespace microcare::adapter::detail
