#include "adapter/store/pg_connection.hpp"

#include <charconv>

namespace microcare::adapter::detail {

PgParams& PgParams::Add(std::string_view value) {
    values_.emplace_back(std::string(value));
    return *this;
}

PgParams& PgParams::Add(std::int64_t value) {
    values_.emplace_back(std::to_string(value));
    return *this;
}

PgParams& PgParams::Add(std::optional<std::int64_t> value) {
    return value ? Add(*value) : AddNull();
}

PgParams& PgParams::AddNull() {
    values_.emplace_back(std::nullopt);
    return *this;
}

PgParams& PgParams::Append(const PgParams& more) {
    values_.insert(values_.end(), more.values_.begin(), more.values_.end());
    return *this;
}

std::vector<const char*> PgParams::Pointers() const {
    std::vector<const char*> pointers;
    pointers.reserve(values_.size());
    for (const auto& value : values_) {
        pointers.push_back(value ? value->c_str() : nullptr);
    }
    return pointers;
}

bool PgResult::IsNull(int row, int column) const {
    return PQgetisnull(result_.get(), row, column) != 0;
}

std::string PgResult::Text(int row, int column) const {
    return std::string(PQgetvalue(result_.get(), row, column),
                       static_cast<std::size_t>(PQgetlength(result_.get(), row, column)));
}

std::int64_t PgResult::Int64(int row, int column) const {
    const char* text = PQgetvalue(result_.get(), row, column);
    const char* end = text + PQgetlength(result_.get(), row, column);
    std::int64_t value = 0;
    std::from_chars(text, end, value);  // our own bigint columns: always a number
    return value;
}

std::optional<std::int64_t> PgResult::OptionalInt64(int row, int column) const {
    if (IsNull(row, column)) {
        return std::nullopt;
    }
    return Int64(row, column);
}

std::int64_t PgResult::Affected() const {
    const char* text = PQcmdTuples(result_.get());
    std::int64_t value = 0;
    std::from_chars(text, text + std::char_traits<char>::length(text), value);
    return value;
}

Result<PgConnection> PgConnection::Connect(const std::string& url) {
    // Defaults first: with expand_dbname, what the URL says overrides them. A connect that
    // hangs (a firewall dropping packets) would stall the store's thread without the timeout.
    const char* keywords[] = {"application_name", "connect_timeout", "dbname", nullptr};
    const char* values[] = {"microcare", "10", url.c_str(), nullptr};
    PgConnection connection(PQconnectdbParams(keywords, values, 1));
    if (!connection.Ok()) {
        return Error::kStoreFailed;
    }
    return connection;
}

Result<PgResult> PgConnection::Check(PGresult* raw) {
    PgResult result(raw);
    const ExecStatusType status = raw != nullptr ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
        last_sqlstate_.clear();
        return result;
    }
    const char* state = raw != nullptr ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
    last_sqlstate_ = state != nullptr ? state : "";
    return Error::kStoreFailed;
}

Result<PgResult> PgConnection::Exec(std::string_view sql, const PgParams& params, Plan plan) {
    if (!conn_) {
        return Error::kStoreFailed;
    }
    const std::string text(sql);
    const auto pointers = params.Pointers();
    const char* const* values = pointers.empty() ? nullptr : pointers.data();
    auto name =
        plan == Plan::kCached ? Prepared(text, params.size()) : Result<const std::string*>(nullptr);
    if (!name) {
        return name.error();  // the statement itself is wrong, or the transaction failed
    }
    ++round_trips_;
    if (*name == nullptr) {
        return Check(PQexecParams(conn_.get(), text.c_str(), params.size(), nullptr, values,
                                  nullptr, nullptr, 0));
    }
    return Check(
        PQexecPrepared(conn_.get(), (*name)->c_str(), params.size(), values, nullptr, nullptr, 0));
}

Result<const std::string*> PgConnection::Prepared(const std::string& sql, int parameters) {
    // The store's statements are a fixed set; text built around a value would fill the map,
    // so it is bounded and what comes after runs unprepared (nullptr).
    constexpr std::size_t kMaxPrepared = 128;
    if (auto known = prepared_.find(sql); known != prepared_.end()) {
        return &known->second;
    }
    if (prepared_.size() >= kMaxPrepared) {
        return nullptr;
    }
    std::string name = "microcare_" + std::to_string(prepared_.size());
    ++round_trips_;
    auto prepared = Check(PQprepare(conn_.get(), name.c_str(), sql.c_str(), parameters, nullptr));
    if (!prepared) {
        return prepared.error();
    }
    return &prepared_.emplace(sql, std::move(name)).first->second;
}

Result<void> PgConnection::ExecScript(const std::string& sql) {
    if (!conn_) {
        return Error::kStoreFailed;
    }
    ++round_trips_;
    auto result = Check(PQexec(conn_.get(), sql.c_str()));
    if (!result) {
        return result.error();
    }
    return {};
}

Result<int> PgConnection::ConsumeNotifications() {
    if (!conn_ || PQconsumeInput(conn_.get()) == 0 || !Ok()) {
        return Error::kStoreFailed;
    }
    int count = 0;
    while (PGnotify* notify = PQnotifies(conn_.get())) {
        PQfreemem(notify);
        ++count;
    }
    return count;
}

bool PgConnection::InTransaction() const {
    if (!conn_) {
        return false;
    }
    const auto status = PQtransactionStatus(conn_.get());
    // INERROR is still a transaction: a savepoint can bring it back, a ROLLBACK ends it.
    return status == PQTRANS_INTRANS || status == PQTRANS_INERROR || status == PQTRANS_ACTIVE;
}

void PgConnection::Poll() {
    if (Ok() && Idle()) {
        // libpq's socket is non-blocking underneath: this never waits. Notifications are not
        // LISTENed for on this connection, so there are none to drop. Twice: a session the
        // server ended has sent its last message, then closed; the first read takes the
        // message, the second meets the end of the stream and marks the connection bad.
        for (int read = 0; read < 2 && PQconsumeInput(conn_.get()) != 0; ++read) {
        }
    }
}

bool PgConnection::Reset() {
    if (!conn_) {
        return false;
    }
    PQreset(conn_.get());
    prepared_.clear();  // a new session knows none of them
    return Ok();
}

}  // namespace microcare::adapter::detail
