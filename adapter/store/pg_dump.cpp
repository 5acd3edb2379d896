#include "adapter/store/pg_dump.hpp"

#include <libpq-fe.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

extern char** environ;

namespace microcare::adapter {

Result<void> DumpPostgresStore(const std::string& url, const std::string& file,
                               std::string& problem) {
    // libpq parses the URL as it would to connect, and names the variable of each setting.
    char* parse_error = nullptr;
    PQconninfoOption* options = PQconninfoParse(url.c_str(), &parse_error);
    if (options == nullptr) {
        problem = "store.url cannot be read by libpq";
        if (parse_error != nullptr) PQfreemem(parse_error);
        return Error::kInvalidConfig;
    }
    std::map<std::string, std::string> environment;
    for (char** variable = environ; *variable != nullptr; ++variable) {
        const std::string entry(*variable);
        const auto equals = entry.find('=');
        // Settings of the caller's own for another server must not mix with the URL's.
        if (equals == std::string::npos || entry.starts_with("PG")) continue;
        environment[entry.substr(0, equals)] = entry.substr(equals + 1);
    }
    for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
        if (option->envvar != nullptr && option->val != nullptr && *option->val != '\0') {
            environment[option->envvar] = option->val;
        }
    }
    PQconninfoFree(options);
    // The schema the store lives in (the first of its search_path, usually public): only it is
    // dumped, not what else shares the database.
    std::string schema;
    if (PGconn* db = PQconnectdb(url.c_str()); PQstatus(db) == CONNECTION_OK) {
        PGresult* result = PQexec(db, "SELECT current_schema()");
        if (PQresultStatus(result) == PGRES_TUPLES_OK && PQntuples(result) == 1) {
            schema = PQgetvalue(result, 0, 0);
        }
        PQclear(result);
        PQfinish(db);
    } else {
        problem = "the database cannot be reached";
        PQfinish(db);
        return Error::kConnectionFailed;
    }
    if (schema.empty()) {
        problem = "the database names no schema for the store (search_path)";
        return Error::kStoreFailed;
    }
    // A pattern to pg_dump: quoted, so that it matches this one name exactly.
    std::string quoted = "\"";
    for (char c : schema) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    std::vector<std::string> entries;
    for (const auto& [name, value] : environment) entries.push_back(name + "=" + value);
    std::vector<char*> envp;
    for (std::string& entry : entries) envp.push_back(entry.data());
    envp.push_back(nullptr);

    std::string file_argument = "--file=" + file;
    std::vector<std::string> arguments = {"pg_dump",         "--format=custom",    "--no-owner",
                                          "--no-privileges", "--schema=" + quoted, file_argument};
    std::vector<char*> argv;
    for (std::string& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    pid_t child = 0;
    if (const int spawned =
            ::posix_spawnp(&child, "pg_dump", nullptr, nullptr, argv.data(), envp.data());
        spawned != 0) {
        problem = std::string("pg_dump cannot be run (") + std::strerror(spawned) +
                  "): install PostgreSQL's client tools (Debian: postgresql-client)";
        return Error::kNotFound;
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            problem = "pg_dump: lost track of it";
            return Error::kStoreFailed;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        problem = WIFEXITED(status) ? "pg_dump exited with " + std::to_string(WEXITSTATUS(status))
                                    : "pg_dump was killed";
        return Error::kStoreFailed;
    }
    return {};
}

}  // namespace microcare::adapter
