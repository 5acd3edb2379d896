#pragma once

#include <cstdint>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "adapter/error.hpp"

namespace microcare::adapter {

// The audit trail: one JSON object per line for every decision and every write, each holding
// the SHA-256 of the previous record, so that an edited, removed or reordered record breaks the
// chain at that point. Records carry resource ids, rule ids and outcomes; never names, birth
// dates, free text or bodies.
class AuditLog {
public:
    struct Field {
        Field(std::string_view k, std::string_view v) : key(k), value(v) {}
        std::string_view key;
        std::string_view value;
    };

    // Opens (or creates) the log and continues its chain from the last record.
    static Result<std::unique_ptr<AuditLog>> Open(const std::string& path);

    // Appends one record and flushes it. Thread-safe.
    void Append(std::string_view event, std::initializer_list<Field> fields);

    struct Verdict {
        std::size_t records = 0;
        std::optional<std::size_t> first_bad_line;  // 1-based
        std::string problem;
    };
    // Checks the whole chain of a log file.
    static Result<Verdict> Verify(const std::string& path);

private:
    AuditLog(const std::string& path, std::string last_hash, std::uint64_t next_sequence);

    std::mutex mutex_;
    std::ofstream out_;
    std::string last_hash_;
    std::uint64_t next_sequence_;
};

// Lower-case hex SHA-256 (OpenSSL EVP).
std::string Sha256Hex(std::string_view data);

}  // namespace microcare::adapter
