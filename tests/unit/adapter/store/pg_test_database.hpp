#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <string>

namespace microcare::adapter::test_support {

// Where the tests' PostgreSQL server is: MICROCARE_TEST_PG_URL, or the URL that
// tests/pg/pg-server.sh wrote into MICROCARE_TEST_PG_DIR (the ctest fixture starts it). Empty
// with `skip_reason` set when there is none.
struct PgServer {
    std::string url;
    std::string skip_reason;
};

inline PgServer FindPgServer() {
    if (const char* url = std::getenv("MICROCARE_TEST_PG_URL"); url != nullptr && *url != '\0') {
        return {url, ""};
    }
    const char* dir = std::getenv("MICROCARE_TEST_PG_DIR");
    if (dir == nullptr || *dir == '\0') {
        return {"", "no PostgreSQL server: set MICROCARE_TEST_PG_URL, or run through ctest"};
    }
    std::string line;
    if (std::ifstream url(std::string(dir) + "/url"); url && std::getline(url, line)) {
        return {line, ""};
    }
    if (std::ifstream skip(std::string(dir) + "/skip"); skip && std::getline(skip, line)) {
        return {"", line};
    }
    return {"", std::string("no PostgreSQL server in ") + dir + " (tests/pg/pg-server.sh)"};
}

// SQL on the test server behind the stores' backs, as an admin's psql would. Returns the first
// column of the first row ("" when none), or nothing on an error.
inline std::optional<std::string> PgQuery(const std::string& url, const std::string& sql) {
    PGconn* conn = PQconnectdb(url.c_str());
    std::optional<std::string> value;
    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult* result = PQexec(conn, sql.c_str());
        const auto status = PQresultStatus(result);
        if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
            value = PQntuples(result) > 0 ? PQgetvalue(result, 0, 0) : "";
        } else {
            ADD_FAILURE() << "SQL failed: " << PQerrorMessage(conn);
        }
        PQclear(result);
    } else {
        ADD_FAILURE() << "connect failed: " << PQerrorMessage(conn);
    }
    PQfinish(conn);
    return value;
}

// A schema of its own on the test server for one test, dropped at the end: tests run in
// parallel (ctest -j) on one database without meeting. url() selects it for every connection
// (libpq's `options`, search_path), so the store's unqualified tables land there.
class PgTestSchema {
public:
    PgTestSchema() : server_(FindPgServer()) {
        if (server_.url.empty()) {
            return;
        }
        static std::atomic<int> counter{0};
        name_ = "t_" + std::to_string(::getpid()) + "_" + std::to_string(counter++);
        if (!PgQuery(server_.url,
                     "DROP SCHEMA IF EXISTS " + name_ + " CASCADE; CREATE SCHEMA " + name_)) {
            name_.clear();
        }
    }
    PgTestSchema(const PgTestSchema&) = delete;
    PgTestSchema& operator=(const PgTestSchema&) = delete;
    ~PgTestSchema() {
        if (!name_.empty()) {
            PgQuery(server_.url, "DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
        }
    }

    bool available() const { return !name_.empty(); }
    const std::string& schema() const { return name_; }
    const std::string& skip_reason() const { return server_.skip_reason; }
    const std::string& server_url() const { return server_.url; }
    std::string url() const {
        const char separator = server_.url.find('?') == std::string::npos ? '?' : '&';
        // application_name: the test's connections are told from other tests' in pg_stat_activity.
        return server_.url + separator + "options=-csearch_path%3D" + name_ +
               "&application_name=" + name_;
    }
    // SQL inside the schema.
    std::optional<std::string> Query(const std::string& sql) const { return PgQuery(url(), sql); }

private:
    PgServer server_;
    std::string name_;
};

}  // namespace microcare::adapter::test_support
