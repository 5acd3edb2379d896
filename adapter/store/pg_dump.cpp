#include "adapter/store/pg_dump.hpp"

#include <libpq-fe.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <vector>

#include "adapter/file_io.hpp"
#include "adapter/store/pg_job_store.hpp"

extern char** environ;

namespace microcare::adapter {
namespace {

// The environment a PostgreSQL client tool connects with: this process's own, without any PG*
// setting of the caller's (meant for another server, they must not mix with the URL's), plus
// each setting of the URL in the variable libpq names for it.
Result<std::vector<std::string>> ToolEnvironment(const std::string& url, std::string& problem) {
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
        if (equals == std::string::npos || entry.starts_with("PG")) continue;
        environment[entry.substr(0, equals)] = entry.substr(equals + 1);
    }
    for (PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
        if (option->envvar != nullptr && option->val != nullptr && *option->val != '\0') {
            environment[option->envvar] = option->val;
        }
    }
    PQconninfoFree(options);
    std::vector<std::string> entries;
    for (const auto& [name, value] : environment) entries.push_back(name + "=" + value);
    return entries;
}

// Runs `tool` (found on the PATH) with `arguments` and `environment`, and waits for it.
Result<void> RunTool(const std::string& tool, std::vector<std::string> arguments,
                     std::vector<std::string> environment, std::string& problem) {
    std::vector<char*> argv;
    arguments.insert(arguments.begin(), tool);
    for (std::string& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (std::string& entry : environment) envp.push_back(entry.data());
    envp.push_back(nullptr);
    pid_t child = 0;
    if (const int spawned =
            ::posix_spawnp(&child, tool.c_str(), nullptr, nullptr, argv.data(), envp.data());
        spawned != 0) {
        problem = tool + " cannot be run (" + std::strerror(spawned) +
                  "): install PostgreSQL's client tools (Debian: postgresql-client)";
        return Error::kNotFound;
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0) {
        if (errno != EINTR) {
            problem = tool + ": lost track of it";
            return Error::kStoreFailed;
        }
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        problem = WIFEXITED(status) ? tool + " exited with " + std::to_string(WEXITSTATUS(status))
                                    : tool + " was killed";
        return Error::kStoreFailed;
    }
    return {};
}

// The store's schema (the first of the URL's search_path that exists) and how many tables,
// sequences and views it holds.
struct StoreSchema {
    std::string name;
    long objects = 0;
};

Result<StoreSchema> FindStoreSchema(const std::string& url, std::string& problem) {
    std::unique_ptr<PGconn, decltype(&PQfinish)> db(PQconnectdb(url.c_str()), &PQfinish);
    if (PQstatus(db.get()) != CONNECTION_OK) {
        problem = "the database cannot be reached";
        return Error::kConnectionFailed;
    }
    std::unique_ptr<PGresult, decltype(&PQclear)> result(
        PQexec(db.get(),
               "SELECT current_schema(), (SELECT count(*) FROM pg_catalog.pg_class c JOIN "
               "pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = "
               "current_schema() AND c.relkind IN ('r', 'p', 'S', 'v', 'm'))"),
        &PQclear);
    StoreSchema schema;
    if (PQresultStatus(result.get()) == PGRES_TUPLES_OK && PQntuples(result.get()) == 1 &&
        !PQgetisnull(result.get(), 0, 0)) {
        schema.name = PQgetvalue(result.get(), 0, 0);
        schema.objects = std::strtol(PQgetvalue(result.get(), 0, 1), nullptr, 10);
    }
    if (schema.name.empty()) {
        problem = "the database names no schema for the store (search_path)";
        return Error::kStoreFailed;
    }
    return schema;
}

// pg_restore's table of contents (`--list`) with the schema's own entries (its CREATE and its
// comment) turned into comments, which `--use-list` skips; `schemas` gets the schemas its tables
// are in. An entry reads "ID; OID OID TYPE SCHEMA NAME OWNER".
std::string WithoutSchemaEntries(std::istream& list, std::set<std::string>& schemas) {
    std::string out;
    std::string line;
    while (std::getline(list, line)) {
        const auto semicolon = line.find("; ");
        if (line.empty() || line[0] == ';' || semicolon == std::string::npos) {
            out += line + "\n";
            continue;
        }
        std::istringstream words(line.substr(semicolon + 2));
        std::string oid, table_oid, type, schema;
        words >> oid >> table_oid >> type >> schema;
        if (type == "SCHEMA" ||
            (type == "COMMENT" && line.find(" COMMENT - SCHEMA ") != std::string::npos)) {
            out += ";" + line + "\n";
            continue;
        }
        if (type == "TABLE" && schema != "DATA") schemas.insert(schema);
        out += line + "\n";
    }
    return out;
}

// The highest version in the schema_version rows of pg_restore's SQL text (a COPY block:
// "COPY schema.schema_version (version, applied_at) FROM stdin;", tab-separated rows, "\."); 0
// when there is none.
std::int64_t DumpedSchemaVersion(std::istream& sql) {
    std::int64_t newest = 0;
    std::string line;
    int column = -1;  // of `version`, inside the COPY block
    while (std::getline(sql, line)) {
        if (column < 0) {
            const auto open = line.find(" (");
            if (!line.starts_with("COPY ") || line.find(".schema_version (") == std::string::npos ||
                open == std::string::npos) {
                continue;
            }
            std::istringstream columns(line.substr(open + 2, line.find(')') - open - 2));
            std::string name;
            for (int at = 0; std::getline(columns >> std::ws, name, ','); ++at) {
                if (name == "version") column = at;
            }
            continue;
        }
        if (line == "\\.") break;
        std::istringstream fields(line);
        std::string field;
        for (int at = 0; std::getline(fields, field, '\t'); ++at) {
            if (at == column)
                newest = std::max<std::int64_t>(newest, std::strtoll(field.c_str(), nullptr, 10));
        }
    }
    return newest;
}

}  // namespace

Result<void> DumpPostgresStore(const std::string& url, const std::string& file,
                               std::string& problem) {
    auto environment = ToolEnvironment(url, problem);
    if (!environment) return environment.error();
    // Only the store's schema is dumped, not what else shares the database.
    auto schema = FindStoreSchema(url, problem);
    if (!schema) return schema.error();
    // A pattern to pg_dump: quoted, so that it matches this one name exactly.
    std::string quoted = "\"";
    for (char c : schema->name) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    quoted += "\"";
    return RunTool("pg_dump",
                   {"--format=custom", "--no-owner", "--no-privileges", "--schema=" + quoted,
                    "--file=" + file},
                   std::move(*environment), problem);
}

Result<void> RestorePostgresStore(const std::string& url, const std::string& file,
                                  std::string& problem) {
    auto environment = ToolEnvironment(url, problem);
    if (!environment) return environment.error();
    auto schema = FindStoreSchema(url, problem);
    if (!schema) return schema.error();
    if (schema->objects > 0) {
        problem = "the store's schema " + schema->name + " already holds " +
                  std::to_string(schema->objects) +
                  " tables and sequences: a store is restored into an empty schema (stop every "
                  "replica; drop or rename the old schema, or name another database)";
        return Error::kConflict;
    }
    const auto scratch = MakeScratchDirectory("restore", &problem);
    if (!scratch) return Error::kStoreFailed;
    // Reading the dump (its table of contents, its schema_version rows) connects to nothing.
    const std::string contents = *scratch + "/contents";
    if (auto listed =
            RunTool("pg_restore", {"--list", "--file=" + contents, file}, *environment, problem);
        !listed) {
        problem += " reading " + file;
        return listed.error();
    }
    std::ifstream list(contents);
    std::set<std::string> schemas;
    const std::string edited = WithoutSchemaEntries(list, schemas);
    if (schemas != std::set<std::string>{schema->name}) {
        std::string found;
        for (const std::string& name : schemas) found += (found.empty() ? "" : ", ") + name;
        problem = "the backup's store is in schema " + (found.empty() ? "(none)" : found) +
                  ", store.url's is " + schema->name +
                  " (its search_path): pg_restore puts it back where it was; name that schema";
        return Error::kInvalidConfig;
    }
    // A store of a later release would be put back only for every replica to refuse it.
    const std::string versions = *scratch + "/schema_version.sql";
    if (auto read = RunTool("pg_restore",
                            {"--data-only", "--table=schema_version", "--file=" + versions, file},
                            *environment, problem);
        !read) {
        problem += " reading " + file;
        return read.error();
    }
    std::ifstream version_rows(versions);
    if (const std::int64_t dumped = DumpedSchemaVersion(version_rows);
        dumped > PgJobStore::NewestSchemaVersion()) {
        problem = "the backup's store has schema version " + std::to_string(dumped) +
                  "; this release reads up to " +
                  std::to_string(PgJobStore::NewestSchemaVersion()) +
                  " (a later release took it): restore it with that release";
        return Error::kInvalidConfig;
    }
    const std::string use_list = *scratch + "/use-list";
    std::ofstream(use_list) << edited;
    // The database comes from PGDATABASE (or libpq's default); -d only makes pg_restore connect.
    return RunTool("pg_restore",
                   {"--no-owner", "--no-privileges", "--single-transaction", "--exit-on-error",
                    "--use-list=" + use_list, "--dbname=application_name=microcare-restore", file},
                   std::move(*environment), problem);
}

}  // namespace microcare::adapter
