#include "adapter/service_config.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <initializer_list>
#include <tuple>

#include "adapter/audit/audit_key.hpp"
#include "adapter/cds/jwk_set.hpp"
#include "adapter/client/outbound_url.hpp"
#include "adapter/file_io.hpp"
#include "adapter/issue_report.hpp"
#include "adapter/store/store_location.hpp"
#include "adapter/time_bound.hpp"
#include "fhir/json.hpp"
#include "fhir/json_path_reader.hpp"

namespace microcare::adapter {
namespace {

using fhir::Node;

// Reads one configuration document, collecting every problem with its path.
class ConfigReader : public fhir::JsonPathReader {
public:
    ConfigReader(const EnvLookup& env, const FileReader& read_file, fhir::IssueList& issues,
                 std::string base_dir)
        : JsonPathReader(issues),
          env_(env),
          read_file_(read_file),
          base_dir_(std::move(base_dir)) {}

    // A file's name. With the configuration's folder known, a name is absolute or explicitly
    // relative to that folder (`./tls/server.pem`): a bare `tls/server.pem` would depend on the
    // directory the service happens to be started from, which differs between a shell, systemd
    // and a container.
    std::optional<std::string> FileName(Node object, std::string_view key,
                                        const std::string& path) {
        auto name = String(object, key, path);
        if (!name || name->empty() || base_dir_.empty() || name->front() == '/') return name;
        if (name->starts_with("./") || name->starts_with("../")) {
            return (std::filesystem::path(base_dir_) / *name).lexically_normal().string();
        }
        Error(At(path, key), "\"" + *name + "\" is a relative path: write it absolute, or as ./" +
                                 *name + " for a path beside the configuration file");
        return std::nullopt;
    }

    void FileName(Node object, std::string_view key, const std::string& path, std::string& out) {
        if (auto value = FileName(object, key, path)) out = *value;
    }

    // A section: an object with only these keys.
    bool Object(Node node, const std::string& path, std::initializer_list<std::string_view> keys) {
        if (!JsonPathReader::Object(node, path)) return false;
        Keys(node, path, keys);
        return true;
    }

    // A string with ${NAME} replaced from the environment.
    std::optional<std::string> String(Node object, std::string_view key, const std::string& path) {
        Node node = object[key];
        if (!node.Exists()) return std::nullopt;
        std::string at = At(path, key);
        if (!node.IsString()) {
            Error(at, "must be a string, found " + std::string(node.TypeName()));
            return std::nullopt;
        }
        return Substitute(node.String(), at);
    }

    void String(Node object, std::string_view key, const std::string& path, std::string& out) {
        if (auto value = String(object, key, path)) out = *value;
    }

    // A secret given directly (normally as ${ENV}) or as a file to read: never logged.
    void Secret(Node object, std::string_view key, std::string_view file_key,
                const std::string& path, std::string& out) {
        if (auto value = String(object, key, path)) out = *value;
        if (auto text = SecretFile(object, file_key, path)) out = *text;
    }

    // The content of the file named by `file_key`, without a trailing newline: a secret.
    std::optional<std::string> SecretFile(Node object, std::string_view file_key,
                                          const std::string& path,
                                          std::string* file_name = nullptr) {
        auto file = FileName(object, file_key, path);
        if (!file) return std::nullopt;
        if (file_name != nullptr) *file_name = *file;
        auto text = read_file_(*file);
        if (!text) {
            Error(At(path, file_key),
                  "cannot read " + *file + ": check that it exists and that this user may read it");
            return std::nullopt;
        }
        while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
        return text;
    }

    template <typename T>
    void Number(Node object, std::string_view key, const std::string& path, T& out, double min,
                double max) {
        if (auto value = WholeNumber(object[key], At(path, key), static_cast<long long>(min),
                                     static_cast<long long>(max))) {
            out = static_cast<T>(*value);
        }
    }

    template <typename Duration>
    void Millis(Node object, std::string_view key, const std::string& path, Duration& out,
                double min, double max) {
        long long value = -1;
        Number(object, key, path, value, min, max);
        if (value >= 0)
            out = std::chrono::duration_cast<Duration>(std::chrono::milliseconds(value));
    }

    void Bool(Node object, std::string_view key, const std::string& path, bool& out) {
        if (auto value = JsonPathReader::Bool(object[key], At(path, key))) out = *value;
    }

    // An absolute http(s) URL in normal form (outbound_url.hpp), or an error at `at`.
    std::string HttpUrl(const std::string& text, const std::string& at) {
        auto normal = NormalHttpUrl(text);
        if (!normal) {
            Error(at, "must be an absolute http:// or https:// URL without user info");
            return {};
        }
        return *normal;
    }

    void Server(Node node, ServerSettings& s) {
        const std::string path = "server";
        if (!Object(node, path,
                    {"listen", "port", "basePath", "maxBodyBytes", "maxHeaderBytes",
                     "requestTimeoutMs", "threads", "tls", "auth", "endpointName", "maxConnections",
                     "metricsToken", "metricsTokenFile", "adminToken", "adminTokenFile"})) {
            return;
        }
        String(node, "listen", path, s.listen);
        Number(node, "port", path, s.port, 0, 65535);
        String(node, "basePath", path, s.base_path);
        if (!s.base_path.empty() && (s.base_path.front() != '/' || s.base_path.back() == '/')) {
            Error(At(path, "basePath"), "must start with / and not end with one (\"/fhir\")");
        }
        Number(node, "maxBodyBytes", path, s.max_body_bytes, 1024, 1024.0 * 1024 * 1024);
        Number(node, "maxHeaderBytes", path, s.max_header_bytes, 1024, 1024 * 1024);
        Millis(node, "requestTimeoutMs", path, s.request_timeout, 100, 3600 * 1000);
        Number(node, "threads", path, s.threads, 1, 64);
        Number(node, "maxConnections", path, s.max_connections, 1, 1000000);
        Secret(node, "metricsToken", "metricsTokenFile", path, s.metrics_token);
        if (!s.metrics_token.empty() && s.metrics_token.size() < 16) {
            Error(At(path, "metricsToken"), "too short: use at least 16 characters");
        }
        Secret(node, "adminToken", "adminTokenFile", path, s.admin_token);
        if (!s.admin_token.empty() && s.admin_token.size() < 16) {
            Error(At(path, "adminToken"), "too short: use at least 16 characters");
        }
        String(node, "endpointName", path, s.endpoint_name);
        if (node["tls"].Exists()) {
            const std::string tls_path = At(path, "tls");
            Node tls = node["tls"];
            if (Object(tls, tls_path,
                       {"certificateFile", "privateKeyFile", "clientCaFile",
                        "requireClientCertificate"})) {
                TlsServerSettings t;
                FileName(tls, "certificateFile", tls_path, t.certificate_file);
                FileName(tls, "privateKeyFile", tls_path, t.private_key_file);
                FileName(tls, "clientCaFile", tls_path, t.client_ca_file);
                Bool(tls, "requireClientCertificate", tls_path, t.require_client_certificate);
                if (t.certificate_file.empty() || t.private_key_file.empty()) {
                    Error(tls_path, "certificateFile and privateKeyFile are required with TLS");
                }
                if (t.require_client_certificate && t.client_ca_file.empty()) {
                    Error(At(tls_path, "clientCaFile"),
                          "required when requireClientCertificate is true");
                }
                s.tls = t;
            }
        }
        const std::string auth_path = At(path, "auth");
        Node auth = node["auth"];
        if (!auth.Exists()) {
            Error(auth_path, "missing: list the EHRs' bearer tokens, or allowAnonymous for a demo");
        } else if (Object(auth, auth_path, {"bearerTokens", "allowAnonymous"})) {
            Bool(auth, "allowAnonymous", auth_path, s.allow_anonymous);
            Node tokens = auth["bearerTokens"];
            if (tokens.Exists() && !tokens.IsArray())
                Error(At(auth_path, "bearerTokens"), "must be an array");
            for (std::size_t i = 0; i < tokens.Size(); ++i) {
                std::string at = At(auth_path, "bearerTokens") + "[" + std::to_string(i) + "]";
                if (!tokens[i].IsString()) {
                    Error(at, "must be a string");
                    continue;
                }
                if (auto token = Substitute(tokens[i].String(), at)) {
                    if (token->size() < 16) {
                        Error(at, "too short: use at least 16 characters");
                    } else {
                        s.bearer_tokens.push_back(*token);
                    }
                }
            }
            if (s.bearer_tokens.empty() && !s.allow_anonymous) {
                Error(auth_path, "no bearer token: every request would be refused");
            }
        }
        // One credential per role: an EHR's token must not open the admin endpoint.
        if (!s.admin_token.empty() && (s.admin_token == s.metrics_token ||
                                       std::find(s.bearer_tokens.begin(), s.bearer_tokens.end(),
                                                 s.admin_token) != s.bearer_tokens.end())) {
            Error(At(path, "adminToken"), "must differ from the EHRs' and the metrics token");
        }
    }

    void Store(Node node, StoreSettings& s) {
        const std::string path = "store";
        if (!Object(node, path, {"path", "url", "synchronous"})) return;
        FileName(node, "path", path, s.path);
        String(node, "url", path, s.url);
        Bool(node, "synchronous", path, s.synchronous);
        if (s.path.empty()) Error(At(path, "path"), "must not be empty");
        if (node["url"].Exists()) {
            if (node["path"].Exists()) {
                Error(At(path, "url"), "store.path and store.url name two stores: set one");
            } else if (!IsPostgresUrl(s.url)) {
                // Never echoed: the text may hold a password.
                Error(At(path, "url"), "must be a postgresql:// (or postgres://) URL");
            }
        }
    }

    void Worker(Node node, WorkerSettings& w) {
        const std::string path = "worker";
        if (!Object(node, path,
                    {"concurrency", "maxAttempts", "maxAgeSeconds", "backoffInitialMs",
                     "backoffMaxMs", "leaseSeconds", "pollIntervalMs", "shutdownGraceSeconds"})) {
            return;
        }
        Number(node, "concurrency", path, w.concurrency, 1, 256);
        Number(node, "maxAttempts", path, w.max_attempts, 0, 100000);
        long long seconds = -1;
        Number(node, "maxAgeSeconds", path, seconds, 1, 365.0 * 24 * 3600);
        if (seconds > 0) w.max_age = std::chrono::seconds(seconds);
        Millis(node, "backoffInitialMs", path, w.backoff_initial, 1, 3600 * 1000);
        Millis(node, "backoffMaxMs", path, w.backoff_max, 1, 24.0 * 3600 * 1000);
        seconds = -1;
        Number(node, "leaseSeconds", path, seconds, 1, 3600);
        if (seconds > 0) w.lease = std::chrono::seconds(seconds);
        Millis(node, "pollIntervalMs", path, w.poll_interval, 1, 60 * 1000);
        seconds = -1;
        Number(node, "shutdownGraceSeconds", path, seconds, 0, 3600);
        if (seconds >= 0) w.shutdown_grace = std::chrono::seconds(seconds);
        if (w.backoff_initial > w.backoff_max) {
            Error(At(path, "backoffInitialMs"), "must not exceed backoffMaxMs");
        }
    }

    void Poll(Node node, PollSettings& p) {
        const std::string path = "poll";
        if (!Object(node, path,
                    {"enabled", "intervalMs", "query", "pageSize", "maxPagesPerPoll", "overlapMs",
                     "since", "backoffInitialMs", "backoffMaxMs", "appointments"})) {
            return;
        }
        p.enabled = true;  // the section is there to be used; "enabled": false keeps it aside
        Bool(node, "enabled", path, p.enabled);
        Millis(node, "intervalMs", path, p.interval, 1000, 24.0 * 3600 * 1000);
        Number(node, "pageSize", path, p.page_size, 1, 1000);
        Number(node, "maxPagesPerPoll", path, p.max_pages, 1, 1000);
        Millis(node, "overlapMs", path, p.overlap, 0, 24.0 * 3600 * 1000);
        Millis(node, "backoffInitialMs", path, p.backoff_initial, 100, 3600 * 1000);
        Millis(node, "backoffMaxMs", path, p.backoff_max, 100, 24.0 * 3600 * 1000);
        if (p.backoff_initial > p.backoff_max) {
            Error(At(path, "backoffInitialMs"), "must not exceed backoffMaxMs");
        }
        if (auto query = String(node, "query", path)) {
            // A search relative to ehr.baseUrl: an absolute URL could take the EHR's
            // credentials elsewhere, and without {cursor} every poll would read everything.
            if (HasScheme(*query) || query->starts_with("/")) {
                Error(At(path, "query"),
                      "must be a search relative to ehr.baseUrl (Encounter?...)");
            } else if (!query->starts_with("Encounter?")) {
                Error(At(path, "query"), "must search Encounters (Encounter?...)");
            } else if (query->find("{cursor}") == std::string::npos) {
                Error(At(path, "query"), "must contain {cursor} (as _lastUpdated=gt{cursor})");
            } else {
                p.query = *query;
            }
        }
        if (node["appointments"].Exists()) Appointments(node["appointments"], p.appointments);
        if (auto since = String(node, "since", path); since && *since != "now") {
            auto instant = ParseInstant(*since);
            if (!instant) {
                Error(At(path, "since"),
                      "must be \"now\" or an instant with its offset (2026-12-01T00:00:00Z)");
            } else {
                p.since = *instant;
            }
        }
    }

    void Appointments(Node node, AppointmentPollSettings& a) {
        const std::string path = "poll.appointments";
        if (!Object(node, path,
                    {"enabled", "query", "rescreenQuery", "horizonDays", "rescreenEveryMs"})) {
            return;
        }
        a.enabled = true;
        Bool(node, "enabled", path, a.enabled);
        Number(node, "horizonDays", path, a.horizon_days, 1, 365);
        Millis(node, "rescreenEveryMs", path, a.rescreen_every, 1000, 7 * 24.0 * 3600 * 1000);
        // Searches relative to ehr.baseUrl, for the reason `poll.query` is.
        for (auto [key, target, needs_cursor] :
             {std::tuple{"query", &a.query, true}, {"rescreenQuery", &a.rescreen_query, false}}) {
            auto query = String(node, key, path);
            if (!query) continue;
            if (HasScheme(*query) || query->starts_with("/")) {
                Error(At(path, key), "must be a search relative to ehr.baseUrl (Appointment?...)");
            } else if (!query->starts_with("Appointment?")) {
                Error(At(path, key), "must search Appointments (Appointment?...)");
            } else if (needs_cursor && query->find("{cursor}") == std::string::npos) {
                Error(At(path, key), "must contain {cursor} (as _lastUpdated=gt{cursor})");
            } else {
                *target = *query;
            }
        }
    }

    void Ehr(Node node, EhrSettings& e) {
        const std::string path = "ehr";
        if (!Object(node, path,
                    {"baseUrl", "caFile", "clientCertificateFile", "clientKeyFile",
                     "connectTimeoutMs", "requestTimeoutMs", "maxResponseBytes", "auth",
                     "messageEndpoint", "allowedResponseUrls"})) {
            return;
        }
        if (auto endpoint = String(node, "messageEndpoint", path)) {
            e.message_endpoint = HttpUrl(*endpoint, At(path, "messageEndpoint"));
        }
        if (Node urls = node["allowedResponseUrls"]; urls.Exists()) {
            const std::string urls_path = At(path, "allowedResponseUrls");
            if (!urls.IsArray()) Error(urls_path, "must be an array of http(s) URLs");
            for (std::size_t i = 0; i < urls.Size(); ++i) {
                const std::string at = urls_path + "[" + std::to_string(i) + "]";
                if (!urls[i].IsString()) {
                    Error(at, "must be a string");
                    continue;
                }
                if (auto url = Substitute(urls[i].String(), at))
                    e.allowed_response_urls.push_back(HttpUrl(*url, at));
            }
        }
        // An unset ${VAR} has been reported: no second message about the URL it would have made.
        const bool base_url_given = node["baseUrl"].Exists();
        if (auto url = String(node, "baseUrl", path)) e.base_url = *url;
        if ((!base_url_given || !e.base_url.empty()) && !e.base_url.starts_with("http://") &&
            !e.base_url.starts_with("https://")) {
            Error(At(path, "baseUrl"), "must be an http:// or https:// URL of the EHR's FHIR base");
        }
        while (e.base_url.ends_with('/')) e.base_url.pop_back();
        FileName(node, "caFile", path, e.ca_file);
        FileName(node, "clientCertificateFile", path, e.client_certificate_file);
        FileName(node, "clientKeyFile", path, e.client_key_file);
        Millis(node, "connectTimeoutMs", path, e.connect_timeout, 10, 600 * 1000);
        Millis(node, "requestTimeoutMs", path, e.request_timeout, 10, 3600 * 1000);
        Number(node, "maxResponseBytes", path, e.max_response_bytes, 1024,
               4.0 * 1024 * 1024 * 1024);
        if (e.client_certificate_file.empty() != e.client_key_file.empty()) {
            Error(path, "clientCertificateFile and clientKeyFile go together");
        }
        Node auth = node["auth"];
        if (!auth.Exists()) return;
        const std::string auth_path = At(path, "auth");
        if (!Object(auth, auth_path,
                    {"type", "token", "tokenFile", "clientId", "privateKey", "privateKeyFile",
                     "keyId", "algorithm", "scope", "tokenEndpoint"})) {
            return;
        }
        std::string type = "none";
        String(auth, "type", auth_path, type);
        AuthSettings& a = e.auth;
        if (type == "none") {
            a.kind = AuthSettings::Kind::kNone;
        } else if (type == "bearer") {
            a.kind = AuthSettings::Kind::kBearer;
            Secret(auth, "token", "tokenFile", auth_path, a.bearer_token);
            if (!auth["token"].Exists() && !auth["tokenFile"].Exists()) {
                Error(At(auth_path, "token"), "required for bearer auth (or tokenFile)");
            }
        } else if (type == "smart-backend") {
            a.kind = AuthSettings::Kind::kSmartBackend;
            String(auth, "clientId", auth_path, a.client_id);
            Secret(auth, "privateKey", "privateKeyFile", auth_path, a.private_key_pem);
            String(auth, "keyId", auth_path, a.key_id);
            String(auth, "algorithm", auth_path, a.algorithm);
            String(auth, "scope", auth_path, a.scope);
            String(auth, "tokenEndpoint", auth_path, a.token_endpoint);
            if (a.client_id.empty()) Error(At(auth_path, "clientId"), "required for smart-backend");
            if (!auth["privateKey"].Exists() && !auth["privateKeyFile"].Exists()) {
                Error(At(auth_path, "privateKeyFile"), "required for smart-backend");
            }
            if (a.algorithm != "RS384" && a.algorithm != "ES384") {
                Error(At(auth_path, "algorithm"), "must be RS384 or ES384");
            }
        } else {
            Error(At(auth_path, "type"), "\"" + type + "\" is not none, bearer or smart-backend");
        }
    }

    void Audit(Node node, AuditSettings& a) {
        const std::string path = "audit";
        if (!Object(node, path,
                    {"path", "keyFile", "checkpointPath", "checkpointEvery", "checkpointSeconds",
                     "rotateBytes", "rotateHours", "keepFiles", "keepHours", "fhirAuditEvents"})) {
            return;
        }
        Bool(node, "fhirAuditEvents", path, a.fhir_audit_events);
        FileName(node, "path", path, a.path);
        if (a.path.empty()) Error(At(path, "path"), "must not be empty");
        FileName(node, "checkpointPath", path, a.checkpoint_path);
        Number(node, "checkpointEvery", path, a.checkpoint_every, 1, 1000000);
        long long seconds = -1;
        Number(node, "checkpointSeconds", path, seconds, 1, 24 * 3600);
        if (seconds > 0) a.checkpoint_interval = std::chrono::seconds(seconds);
        // 0 turns rotation off; below 64 KiB a file would hold too few records to be useful.
        Number(node, "rotateBytes", path, a.rotate_bytes, 0, 1024.0 * 1024 * 1024 * 1024);
        if (a.rotate_bytes != 0 && a.rotate_bytes < 64 * 1024) {
            Error(At(path, "rotateBytes"), "must be 0 (never rotate) or at least 65536");
        }
        Number(node, "keepFiles", path, a.keep_files, 0, 1000000);
        long long hours = -1;
        Number(node, "rotateHours", path, hours, 0, 24.0 * 366);
        if (hours >= 0) a.rotate_every = std::chrono::hours(hours);
        hours = -1;
        Number(node, "keepHours", path, hours, 0, 24.0 * 366 * 100);
        if (hours >= 0) a.keep_for = std::chrono::hours(hours);
        // The key is a secret: read from its file, never shown.
        if (auto key = SecretFile(node, "keyFile", path, &a.key_file)) {
            a.key = *key;
            if (std::string problem = ChainKey::KeyProblem(a.key); !problem.empty()) {
                Error(At(path, "keyFile"), problem);
            }
        }
    }

    // http(s) URLs in normal form, trailing slashes dropped.
    std::vector<std::string> UrlList(Node node, std::string_view key, const std::string& path) {
        std::vector<std::string> out;
        Node list = node[key];
        const std::string at = At(path, key);
        if (!list.Exists()) return out;
        if (!list.IsArray()) {
            Error(at, "must be an array of http(s) URLs");
            return out;
        }
        for (std::size_t i = 0; i < list.Size(); ++i) {
            const std::string item_at = At(at, i);
            auto text = list[i].IsString() ? Substitute(list[i].String(), item_at) : std::nullopt;
            if (!list[i].IsString()) Error(item_at, "must be a string");
            if (!text) continue;
            std::string url = HttpUrl(*text, item_at);
            while (url.ends_with('/')) url.pop_back();
            if (!url.empty()) out.push_back(std::move(url));
        }
        return out;
    }

    void Cds(Node node, CdsSettings& c) {
        const std::string path = "cds";
        if (!Object(
                node, path,
                {"serviceBaseUrl", "path", "issuers", "allowedOrigins", "maxTokenLifetimeSeconds",
                 "clockSkewSeconds", "jwksRefreshSeconds", "caFile", "fetchTimeoutMs"})) {
            return;
        }
        c.enabled = true;
        if (auto base = String(node, "serviceBaseUrl", path)) {
            c.service_base_url = HttpUrl(*base, At(path, "serviceBaseUrl"));
            while (c.service_base_url.ends_with('/')) c.service_base_url.pop_back();
        } else {
            Error(At(path, "serviceBaseUrl"),
                  "missing: the URL the EHR calls MicroCare at (JWT audiences are checked "
                  "against it)");
        }
        String(node, "path", path, c.path);
        if (c.path.empty() || c.path.front() != '/' || c.path.back() == '/') {
            Error(At(path, "path"), "must start with / and not end with one");
        }
        long long seconds = -1;
        Number(node, "maxTokenLifetimeSeconds", path, seconds, 1, 3600);
        if (seconds > 0) c.max_token_lifetime = std::chrono::seconds(seconds);
        seconds = -1;
        Number(node, "clockSkewSeconds", path, seconds, 0, 300);
        if (seconds >= 0) c.clock_skew = std::chrono::seconds(seconds);
        seconds = -1;
        Number(node, "jwksRefreshSeconds", path, seconds, 1, 86400);
        if (seconds > 0) c.jwks_refresh_interval = std::chrono::seconds(seconds);
        FileName(node, "caFile", path, c.ca_file);
        Millis(node, "fetchTimeoutMs", path, c.fetch_timeout, 10, 600 * 1000);
        if (Node origins = node["allowedOrigins"]; origins.Exists()) {
            const std::string at = At(path, "allowedOrigins");
            if (!origins.IsArray()) Error(at, "must be an array of origins");
            for (std::size_t i = 0; i < origins.Size(); ++i) {
                std::string_view origin = origins[i].String();
                if (origin == "*" ||
                    ((origin.starts_with("https://") || origin.starts_with("http://")) &&
                     origin.find('/', 8) == std::string_view::npos)) {
                    c.allowed_origins.emplace_back(origin);
                } else {
                    Error(At(at, i), "must be \"*\" or an origin such as https://ehr.example");
                }
            }
        }
        Node issuers = node["issuers"];
        const std::string issuers_path = At(path, "issuers");
        if (!issuers.Exists()) return;  // discovery only: every hook call is refused
        if (!issuers.IsArray()) {
            Error(issuers_path, "must be an array");
            return;
        }
        for (std::size_t i = 0; i < issuers.Size(); ++i) {
            const std::string at = At(issuers_path, i);
            Node item = issuers[i];
            if (!Object(item, at, {"iss", "jwksUrls", "jwks", "fhirServers"})) continue;
            CdsIssuer issuer;
            String(item, "iss", at, issuer.issuer);
            if (issuer.issuer.empty()) Error(At(at, "iss"), "required");
            for (const CdsIssuer& other : c.issuers) {
                if (other.issuer == issuer.issuer && !issuer.issuer.empty()) {
                    Error(At(at, "iss"), "\"" + issuer.issuer + "\" is configured twice");
                }
            }
            issuer.jwks_urls = UrlList(item, "jwksUrls", at);
            issuer.fhir_servers = UrlList(item, "fhirServers", at);
            if (Node jwks = item["jwks"]; jwks.Exists()) {
                issuer.jwks = fhir::Serialize(jwks);
                auto keys = ParseJwks(issuer.jwks);
                if (!keys || keys->empty()) {
                    Error(At(at, "jwks"),
                          "must be a JWK Set with at least one RSA (2048 bits or more) or P-384 "
                          "key with a kid");
                }
            }
            if (issuer.jwks.empty() && issuer.jwks_urls.empty()) {
                Error(at, "needs jwksUrls or jwks: the keys its JWTs are verified with");
            }
            c.issuers.push_back(std::move(issuer));
        }
    }

    std::optional<ServiceConfig> Read(Node root) {
        ServiceConfig config;
        if (!Object(root, "",
                    {"server", "store", "worker", "ehr", "rules", "log", "audit", "poll", "cds"}))
            return std::nullopt;
        if (root["server"].Exists()) {
            Server(root["server"], config.server);
        } else {
            Error("server", "missing");
        }
        if (root["store"].Exists()) Store(root["store"], config.store);
        if (root["worker"].Exists()) Worker(root["worker"], config.worker);
        if (root["poll"].Exists()) Poll(root["poll"], config.poll);
        if (root["ehr"].Exists()) {
            Ehr(root["ehr"], config.ehr);
            // The server checks asynchronous messages against them as they arrive.
            auto& allowed = config.server.allowed_response_urls;
            allowed = config.ehr.allowed_response_urls;
            if (!config.ehr.message_endpoint.empty())
                allowed.push_back(config.ehr.message_endpoint);
        } else {
            Error("ehr", "missing: the EHR's FHIR base URL is required");
        }
        if (root["rules"].Exists() && Object(root["rules"], "rules", {"path"})) {
            FileName(root["rules"], "path", "rules", config.rules_path);
        }
        if (root["audit"].Exists()) Audit(root["audit"], config.audit);
        if (root["cds"].Exists()) Cds(root["cds"], config.cds);
        if (!config.store.IsFile()) {
            // Replicas on one database write one trail there: files of their own would split
            // it into chains no one holds together.
            config.audit.database = config.store.url;
            for (std::string_view file_only : {"path", "checkpointPath", "rotateBytes",
                                               "rotateHours", "keepFiles", "keepHours"}) {
                if (root["audit"][file_only].Exists()) {
                    Error(At("audit", file_only),
                          "a PostgreSQL store keeps the audit trail in its database, one chain "
                          "for every replica; this setting of trail files does not apply: "
                          "remove it");
                }
            }
        } else if (config.audit.checkpoint_path.empty()) {
            // Apart from the trail: beside the store, where a copy of the trail's directory
            // does not take it along.
            config.audit.checkpoint_path =
                (std::filesystem::path(config.store.path).parent_path() /
                 (std::filesystem::path(config.audit.path).filename().string() + ".checkpoint"))
                    .string();
        }
        if (root["log"].Exists() && Object(root["log"], "log", {"level"})) {
            String(root["log"], "level", "log", config.log_level);
            if (config.log_level != "debug" && config.log_level != "info" &&
                config.log_level != "warning" && config.log_level != "error") {
                Error("log.level", "must be debug, info, warning or error");
            }
        }
        if (HasErrors()) return std::nullopt;
        return config;
    }

private:
    std::optional<std::string> Substitute(std::string_view text, const std::string& path) {
        std::string out;
        std::size_t from = 0;
        while (true) {
            auto start = text.find("${", from);
            if (start == std::string_view::npos) break;
            auto end = text.find('}', start);
            if (end == std::string_view::npos) {
                Error(path, "unterminated ${...}");
                return std::nullopt;
            }
            out.append(text, from, start - from);
            std::string name(text.substr(start + 2, end - start - 2));
            auto value = env_(name);
            if (!value) {
                // The name is safe to show; the value never is.
                Error(path, "environment variable " + name + " is not set");
                return std::nullopt;
            }
            out += *value;
            from = end + 1;
        }
        out.append(text, from);
        return out;
    }

    const EnvLookup& env_;
    const FileReader& read_file_;
    const std::string base_dir_;
};

}  // namespace

std::optional<ServiceConfig> ParseServiceConfig(const std::string& json, const EnvLookup& env,
                                                const FileReader& read_file,
                                                fhir::IssueList& issues,
                                                const std::string& config_dir) {
    auto doc = fhir::JsonDocument::Parse(json, issues);
    if (!doc) return std::nullopt;
    return ConfigReader(env, read_file, issues, config_dir).Read(doc->Root());
}

std::optional<ServiceConfig> LoadServiceConfig(const std::string& path, fhir::IssueList& issues) {
    std::string problem;
    auto text = ReadFile(path, &problem);
    if (!text) {
        issues.Error("not-found", "", "cannot read the configuration " + path + ": " + problem);
        return std::nullopt;
    }
    EnvLookup env = [](const std::string& name) -> std::optional<std::string> {
        const char* value = std::getenv(name.c_str());
        if (value == nullptr) return std::nullopt;
        return std::string(value);
    };
    FileReader files = [](const std::string& file) { return ReadFile(file); };
    std::error_code ignored;
    const auto dir = std::filesystem::absolute(path, ignored).parent_path().string();
    return ParseServiceConfig(*text, env, files, issues, dir);
}

std::optional<ServiceConfig> LoadServiceConfig(const std::string& path, std::ostream& err) {
    fhir::IssueList issues;
    auto config = LoadServiceConfig(path, issues);
    ReportIssues(err, path, issues);
    if (!config || issues.HasErrors()) {
        ReportRefused(err, path, issues);
        return std::nullopt;
    }
    return config;
}

}  // namespace microcare::adapter
