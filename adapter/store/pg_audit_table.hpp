#pragma once

#include <memory>
#include <string>

#include "adapter/audit/audit_table.hpp"
#include "adapter/store/pg_connection.hpp"

namespace microcare::adapter {

// The audit trail of a PostgreSQL store, in its database: `audit_records` (seq, the sealed line)
// and `audit_head` (one row: the last seq, its seal and the sealed checkpoint), both created by
// the store's schema migrations. Each Append is one transaction that takes the head row FOR
// UPDATE, so replicas append one after another, each after the head the last one committed.
// Used by one thread at a time (AuditLog's writer); a lost connection fails that Append and the
// next one reconnects.
class PgAuditTable final : public AuditTable {
public:
    // Connects; the schema is the store's (JobStore::Open migrates it first).
    static Result<std::unique_ptr<PgAuditTable>> Open(const std::string& url);

    Result<void> Append(const Seal& seal) override;
    Result<Stored> ReadHead() override;
    Result<void> ReadLines(const std::function<void(std::string_view line)>& line) override;

private:
    explicit PgAuditTable(detail::PgConnection db) : db_(std::move(db)) {}
    // A connection lost since the last call is re-established first.
    Result<void> Connected();

    detail::PgConnection db_;
};

}  // namespace microcare::adapter
