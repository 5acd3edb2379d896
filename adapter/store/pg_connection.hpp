#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/error.hpp"

namespace microcare::adapter::detail {

// The parameters of one statement, sent as text (PostgreSQL casts them by the statement's
// $n::type or by the column they meet). Kept apart from the statement so that call sites read
// as SQL plus values.
class PgParams {
public:
    PgParams& Add(std::string_view value);
    PgParams& Add(std::int64_t value);
    PgParams& Add(std::optional<std::int64_t> value);
    PgParams& AddNull();
    PgParams& Append(const PgParams& more);

    int size() const { return static_cast<int>(values_.size()); }
    // Pointers into the values: valid while this object lives and is not added to.
    std::vector<const char*> Pointers() const;

private:
    std::vector<std::optional<std::string>> values_;
};

// One statement's result: rows in text format. Owns the PGresult.
class PgResult {
public:
    explicit PgResult(PGresult* result) : result_(result) {}

    int Rows() const { return PQntuples(result_.get()); }
    bool IsNull(int row, int column) const;
    std::string Text(int row, int column) const;
    std::int64_t Int64(int row, int column) const;
    std::optional<std::int64_t> OptionalInt64(int row, int column) const;
    // Rows an INSERT, UPDATE or DELETE touched.
    std::int64_t Affected() const;

private:
    struct Clear {
        void operator()(PGresult* result) const { PQclear(result); }
    };
    std::unique_ptr<PGresult, Clear> result_;
};

// One libpq connection, used by one thread at a time (libpq connections are not thread-safe).
// Every failure comes back as Error::kStoreFailed: PostgreSQL's own message may quote the
// values of a statement (a unique violation names the key), and those can be patient data,
// so it is never passed on or logged here.
class PgConnection {
public:
    PgConnection() = default;  // not connected: every call fails
    // `url` is a postgresql:// URL or a libpq keyword string. Its own settings win over the
    // defaults set here (application_name, connect_timeout).
    static Result<PgConnection> Connect(const std::string& url);

    // How a statement is planned. Each statement is prepared once per session (parsing and
    // planning cost the server more than running a job's few index look-ups), and PostgreSQL
    // may then settle on one plan for every run. kEachRun: planned anew for its values, for a
    // statement whose best plan depends on them and on tables that change fast (a generic
    // plan of the lease made whole encounters twice as slow).
    enum class Plan { kCached, kEachRun };
    Result<PgResult> Exec(std::string_view sql, const PgParams& params = {},
                          Plan plan = Plan::kCached);
    // Several statements without parameters, in one round trip (migrations, session settings).
    Result<void> ExecScript(const std::string& sql);

    bool Ok() const { return conn_ && PQstatus(conn_.get()) == CONNECTION_OK; }
    bool Idle() const { return conn_ && PQtransactionStatus(conn_.get()) == PQTRANS_IDLE; }
    bool InTransaction() const;
    // Re-establishes a lost connection with the same parameters: true when it is back.
    bool Reset();
    // Reads what the server sent meanwhile, without waiting: a server that ended the session
    // (a restart, pg_terminate_backend, a failover) has said so, and Ok() turns false before a
    // statement is wasted on the connection. A connection cut silently is found by the next
    // statement (or TCP keepalives) instead.
    void Poll();
    // The server's five-character SQLSTATE of the last failed statement ("" when none).
    const std::string& last_sqlstate() const { return last_sqlstate_; }
    int BackendPid() const { return conn_ ? PQbackendPID(conn_.get()) : 0; }
    // Statements sent so far (each one round trip to the server): what the store costs.
    std::uint64_t round_trips() const { return round_trips_; }
    // The connection's socket, for waiting on notifications (-1 when none).
    int Socket() const { return conn_ ? PQsocket(conn_.get()) : -1; }
    // Reads what the server sent and drops the notifications received (LISTEN): how many, or
    // an error when the connection is lost.
    Result<int> ConsumeNotifications();

private:
    struct Finish {
        void operator()(PGconn* conn) const { PQfinish(conn); }
    };
    explicit PgConnection(PGconn* conn) : conn_(conn) {}
    // Kept from the result: the caller decides what a failure means (a unique violation may be
    // expected), the text of the error never leaves the connection.
    Result<PgResult> Check(PGresult* result);

    // The name a statement is prepared under in this session, preparing it on first use;
    // nullptr: run it unprepared (too many kinds of statement); an error: it cannot be
    // prepared (wrong, or the transaction failed), and would not run either.
    Result<const std::string*> Prepared(const std::string& sql, int parameters);

    std::unique_ptr<PGconn, Finish> conn_;
    std::string last_sqlstate_;
    std::uint64_t round_trips_ = 0;
    // Statement text -> the name it is prepared under in this session (Reset clears it).
    std::map<std::string, std::string, std::less<>> prepared_;
};

}  // namespace microcare::adapter::detail
