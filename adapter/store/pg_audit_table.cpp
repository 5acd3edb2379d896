#include "adapter/store/pg_audit_table.hpp"

#include <algorithm>

namespace microcare::adapter {
namespace {

using detail::PgConnection;
using detail::PgParams;

// A record is acknowledged once its commit is flushed, whatever the database's default.
constexpr const char* kSession = "SET client_min_messages = warning; SET synchronous_commit = on";

// Rows per INSERT: 2 parameters each, far below PostgreSQL's 65535 per statement.
constexpr std::size_t kRowsPerInsert = 1000;

}  // namespace

Result<std::unique_ptr<PgAuditTable>> PgAuditTable::Open(const std::string& url) {
    auto db = PgConnection::Connect(url);
    if (!db) return db.error();
    if (auto configured = db->ExecScript(kSession); !configured) return configured.error();
    return std::unique_ptr<PgAuditTable>(new PgAuditTable(std::move(*db)));
}

Result<void> PgAuditTable::Connected() {
    db_.Poll();
    if (db_.Ok()) return {};
    if (!db_.Reset()) return Error::kStoreFailed;
    return db_.ExecScript(kSession);
}

Result<void> PgAuditTable::Append(const Seal& seal) {
    if (auto connected = Connected(); !connected) return connected;
    if (auto begun = db_.ExecScript("BEGIN"); !begun) return begun;
    auto append = [&]() -> Result<void> {
        // The row lock is the chain's: another replica's Append waits here for this commit,
        // then reads the head it left.
        auto row = db_.Exec("SELECT seq, hash FROM audit_head FOR UPDATE");
        if (!row) return row.error();
        if (row->Rows() != 1) return Error::kStoreFailed;
        TrailHead head{static_cast<std::uint64_t>(row->Int64(0, 0)), row->Text(0, 1)};
        auto sealed = seal(head);
        if (!sealed) return sealed.error();
        for (std::size_t from = 0; from < sealed->lines.size(); from += kRowsPerInsert) {
            const std::size_t to = std::min(sealed->lines.size(), from + kRowsPerInsert);
            std::string sql = "INSERT INTO audit_records (seq, line) VALUES ";
            PgParams params;
            for (std::size_t i = from; i < to; ++i) {
                const int n = params.size();
                sql += (i == from ? "($" : ",($") + std::to_string(n + 1) + "::bigint,$" +
                       std::to_string(n + 2) + ")";
                params.Add(static_cast<std::int64_t>(head.seq + 1 + i)).Add(sealed->lines[i]);
            }
            if (auto inserted = db_.Exec(sql, params); !inserted) return inserted.error();
        }
        auto moved = db_.Exec("UPDATE audit_head SET seq = $1::bigint, hash = $2, checkpoint = $3",
                              PgParams()
                                  .Add(static_cast<std::int64_t>(sealed->head.seq))
                                  .Add(sealed->head.hash)
                                  .Add(sealed->checkpoint));
        if (!moved) return moved.error();
        return {};
    };
    if (auto appended = append(); !appended) {
        static_cast<void>(db_.ExecScript("ROLLBACK"));
        return appended;
    }
    // COMMIT of a transaction in error answers ROLLBACK without an error: only an idle
    // connection after it means the records are stored.
    if (auto committed = db_.ExecScript("COMMIT"); !committed || !db_.Idle()) {
        return Error::kStoreFailed;
    }
    return {};
}

Result<AuditTable::Stored> PgAuditTable::ReadHead() {
    if (auto connected = Connected(); !connected) return connected.error();
    auto row = db_.Exec(
        "SELECT h.seq, h.hash, h.checkpoint, coalesce(r.line, '') FROM audit_head h "
        "LEFT JOIN audit_records r ON r.seq = h.seq");
    if (!row) return row.error();
    if (row->Rows() != 1) return Error::kStoreFailed;
    return Stored{TrailHead{static_cast<std::uint64_t>(row->Int64(0, 0)), row->Text(0, 1)},
                  row->Text(0, 2), row->Text(0, 3)};
}

Result<void> PgAuditTable::ReadLines(const std::function<void(std::string_view line)>& line) {
    if (auto connected = Connected(); !connected) return connected;
    // In pages, so that a long trail is never held in memory at once.
    constexpr std::int64_t kPage = 5000;
    for (std::int64_t after = -1;;) {
        auto rows = db_.Exec(
            "SELECT seq, line FROM audit_records WHERE seq > $1::bigint "
            "ORDER BY seq LIMIT $2::bigint",
            PgParams().Add(after).Add(kPage));
        if (!rows) return rows.error();
        for (int i = 0; i < rows->Rows(); ++i) line(rows->Text(i, 1));
        if (rows->Rows() < kPage) return {};
        after = rows->Int64(rows->Rows() - 1, 0);
    }
}

}  // namespace microcare::adapter
