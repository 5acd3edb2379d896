#pragma once

#include <chrono>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "adapter/audit/audit_settings.hpp"
#include "adapter/cds/cds_settings.hpp"
#include "adapter/client/smart_auth.hpp"
#include "adapter/poll/poll_settings.hpp"
#include "fhir/issues.hpp"

namespace microcare::adapter {

struct TlsServerSettings {
    std::string certificate_file;
    std::string private_key_file;
    std::string client_ca_file;  // set: client certificates are verified against it (mTLS)
    bool require_client_certificate = false;
};

struct ServerSettings {
    std::string listen = "127.0.0.1";
    unsigned short port = 8080;  // 0: any free port (tests)
    std::string base_path = "/fhir";
    std::size_t max_body_bytes = 16 * 1024 * 1024;
    std::size_t max_header_bytes = 16 * 1024;
    std::chrono::milliseconds request_timeout{30000};
    // Open connections at once. Beyond it the oldest connection still waiting for (or receiving)
    // its request headers is closed to make room, so probes keep answering.
    std::size_t max_connections = 512;
    int threads = 2;
    std::optional<TlsServerSettings> tls;
    std::vector<std::string> bearer_tokens;       // EHRs allowed to call us
    bool allow_anonymous = false;                 // only for local demos and tests
    std::string endpoint_name = "urn:microcare";  // MessageHeader.source.endpoint of replies
    // Opens /metrics (and nothing else): a scraper need not hold an EHR's token.
    std::string metrics_token;
    // Opens POST /admin/reload (and nothing else); never an EHR's token, so an EHR cannot change
    // the rules. Empty: admin requests are refused (SIGHUP still reloads).
    std::string admin_token;
    // Where asynchronous response messages may be sent, in normal form: ehr.messageEndpoint and
    // ehr.allowedResponseUrls (filled from the `ehr` section; empty: none).
    std::vector<std::string> allowed_response_urls;
};

struct StoreSettings {
    std::string path = "var/microcare.db";
    // A postgresql:// URL: the PostgreSQL store that several replicas share. Empty: the
    // embedded SQLite store at `path` (the default).
    std::string url;
    bool synchronous = true;

    // What JobStore::Open takes.
    const std::string& Location() const { return url.empty() ? path : url; }
    bool IsFile() const { return url.empty(); }
};

struct WorkerSettings {
    int concurrency = 4;
    // Transient failures (the EHR down, 5xx, 429) are retried until the job is max_age old, so
    // that an outage of hours loses nothing; max_attempts (0: no limit) can end it sooner.
    int max_attempts = 0;
    std::chrono::seconds max_age{24 * 3600};
    std::chrono::milliseconds backoff_initial{1000};
    std::chrono::milliseconds backoff_max{5 * 60 * 1000};
    std::chrono::seconds lease{120};
    std::chrono::milliseconds poll_interval{200};
    std::chrono::seconds shutdown_grace{10};
};

struct EhrSettings {
    std::string base_url;
    std::string ca_file;  // empty: the system's trust store
    std::string client_certificate_file;
    std::string client_key_file;
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds request_timeout{30000};
    std::size_t max_response_bytes = 64 * 1024 * 1024;
    AuthSettings auth;
    // The EHR's own messaging endpoint: asynchronous responses may go there.
    std::string message_endpoint;
    // Further URLs (and what lies below them) that asynchronous responses may go to.
    std::vector<std::string> allowed_response_urls;
};

// The whole configuration, validated before any socket opens.
struct ServiceConfig {
    ServerSettings server;
    StoreSettings store;
    WorkerSettings worker;
    EhrSettings ehr;
    PollSettings poll;
    std::string rules_path;  // empty: the shipped pack
    AuditSettings audit;
    std::string log_level = "info";
    CdsSettings cds;  // CDS Hooks; off without a `cds` section
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
using FileReader = std::function<std::optional<std::string>(const std::string&)>;

// Reads the JSON configuration. `${NAME}` in any string is replaced by the environment
// variable NAME (a missing one is an error); secrets may also come from files
// (`tokenFile`, `privateKeyFile`). Unknown keys and wrong types are errors, each with its path.
// With `config_dir`, every file name must be absolute or start with ./ or ../ (resolved against
// `config_dir`); without it, names are taken as they are.
std::optional<ServiceConfig> ParseServiceConfig(const std::string& json, const EnvLookup& env,
                                                const FileReader& read_file,
                                                fhir::IssueList& issues,
                                                const std::string& config_dir = {});

// From a file, with the process environment; file names relative to the file's folder.
std::optional<ServiceConfig> LoadServiceConfig(const std::string& path, fhir::IssueList& issues);

// The same for a command: every problem on `err` (`path: error: ...`, then `path: refused (N
// problems)` when it has errors); nullopt when it has errors.
std::optional<ServiceConfig> LoadServiceConfig(const std::string& path, std::ostream& err);

}  // namespace microcare::adapter
