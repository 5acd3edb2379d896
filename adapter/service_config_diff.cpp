#include "adapter/service_config_diff.hpp"

#include <tuple>

namespace microcare::adapter {
namespace {

// Compares field by field: a new field in ServiceConfig must be added here, or a reload would
// not report that it changed.
class Comparer {
public:
    explicit Comparer(ConfigChanges& out) : out_(out) {}

    template <typename T>
    void Live(const std::string& path, const T& a, const T& b) {
        if (!(a == b)) out_.live.push_back(path);
    }
    template <typename T>
    void Restart(const std::string& path, const T& a, const T& b) {
        if (!(a == b)) out_.restart_needed.push_back(path);
    }

private:
    ConfigChanges& out_;
};

bool SameTls(const std::optional<TlsServerSettings>& a, const std::optional<TlsServerSettings>& b) {
    if (a.has_value() != b.has_value()) return false;
    if (!a) return true;
    return std::tie(a->certificate_file, a->private_key_file, a->client_ca_file,
                    a->require_client_certificate) ==
           std::tie(b->certificate_file, b->private_key_file, b->client_ca_file,
                    b->require_client_certificate);
}

}  // namespace

ConfigChanges CompareServiceConfigs(const ServiceConfig& running, const ServiceConfig& next) {
    ConfigChanges changes;
    Comparer c(changes);
    const ServerSettings& s0 = running.server;
    const ServerSettings& s1 = next.server;
    c.Restart("server.listen", s0.listen, s1.listen);
    c.Restart("server.port", s0.port, s1.port);
    c.Restart("server.basePath", s0.base_path, s1.base_path);
    c.Restart("server.maxBodyBytes", s0.max_body_bytes, s1.max_body_bytes);
    c.Restart("server.maxHeaderBytes", s0.max_header_bytes, s1.max_header_bytes);
    c.Restart("server.requestTimeoutMs", s0.request_timeout, s1.request_timeout);
    c.Restart("server.maxConnections", s0.max_connections, s1.max_connections);
    c.Restart("server.threads", s0.threads, s1.threads);
    c.Restart("server.tls", SameTls(s0.tls, s1.tls), true);
    c.Live("server.auth.bearerTokens", s0.bearer_tokens, s1.bearer_tokens);
    c.Live("server.auth.allowAnonymous", s0.allow_anonymous, s1.allow_anonymous);
    c.Restart("server.endpointName", s0.endpoint_name, s1.endpoint_name);
    c.Live("server.metricsToken", s0.metrics_token, s1.metrics_token);
    c.Live("server.adminToken", s0.admin_token, s1.admin_token);
    c.Restart("ehr.messageEndpoint / ehr.allowedResponseUrls", s0.allowed_response_urls,
              s1.allowed_response_urls);

    c.Restart("store.path", running.store.path, next.store.path);
    c.Restart("store.url", running.store.url, next.store.url);  // names the path, never the value
    c.Restart("store.synchronous", running.store.synchronous, next.store.synchronous);

    const WorkerSettings& w0 = running.worker;
    const WorkerSettings& w1 = next.worker;
    c.Restart("worker.concurrency", w0.concurrency, w1.concurrency);
    c.Restart("worker.maxAttempts", w0.max_attempts, w1.max_attempts);
    c.Restart("worker.maxAgeSeconds", w0.max_age, w1.max_age);
    c.Restart("worker.backoffInitialMs", w0.backoff_initial, w1.backoff_initial);
    c.Restart("worker.backoffMaxMs", w0.backoff_max, w1.backoff_max);
    c.Restart("worker.leaseSeconds", w0.lease, w1.lease);
    c.Restart("worker.pollIntervalMs", w0.poll_interval, w1.poll_interval);
    c.Restart("worker.shutdownGraceSeconds", w0.shutdown_grace, w1.shutdown_grace);
    const PollSettings& p0 = running.poll;
    const PollSettings& p1 = next.poll;
    c.Restart("poll.enabled", p0.enabled, p1.enabled);
    c.Restart("poll.intervalMs", p0.interval, p1.interval);
    c.Restart("poll.query", p0.query, p1.query);
    c.Restart("poll.pageSize", p0.page_size, p1.page_size);
    c.Restart("poll.maxPagesPerPoll", p0.max_pages, p1.max_pages);
    c.Restart("poll.overlapMs", p0.overlap, p1.overlap);
    c.Restart("poll.since", p0.since, p1.since);
    c.Restart("poll.backoffInitialMs", p0.backoff_initial, p1.backoff_initial);
    c.Restart("poll.backoffMaxMs", p0.backoff_max, p1.backoff_max);

    const EhrSettings& e0 = running.ehr;
    const EhrSettings& e1 = next.ehr;
    c.Restart("ehr.baseUrl", e0.base_url, e1.base_url);
    c.Restart("ehr.caFile", e0.ca_file, e1.ca_file);
    c.Restart("ehr.clientCertificateFile", e0.client_certificate_file, e1.client_certificate_file);
    c.Restart("ehr.clientKeyFile", e0.client_key_file, e1.client_key_file);
    c.Restart("ehr.connectTimeoutMs", e0.connect_timeout, e1.connect_timeout);
    c.Restart("ehr.requestTimeoutMs", e0.request_timeout, e1.request_timeout);
    c.Restart("ehr.maxResponseBytes", e0.max_response_bytes, e1.max_response_bytes);
    const AuthSettings& a0 = e0.auth;
    const AuthSettings& a1 = e1.auth;
    c.Restart("ehr.auth.type", a0.kind, a1.kind);
    c.Restart("ehr.auth.token", a0.bearer_token, a1.bearer_token);
    c.Restart("ehr.auth.clientId", a0.client_id, a1.client_id);
    c.Restart("ehr.auth.privateKey", a0.private_key_pem, a1.private_key_pem);
    c.Restart("ehr.auth.keyId", a0.key_id, a1.key_id);
    c.Restart("ehr.auth.algorithm", a0.algorithm, a1.algorithm);
    c.Restart("ehr.auth.scope", a0.scope, a1.scope);
    c.Restart("ehr.auth.tokenEndpoint", a0.token_endpoint, a1.token_endpoint);

    c.Live("rules.path", running.rules_path, next.rules_path);

    const AuditSettings& t0 = running.audit;
    const AuditSettings& t1 = next.audit;
    c.Restart("audit.path", t0.path, t1.path);
    c.Restart("audit.keyFile", t0.key_file, t1.key_file);
    c.Restart("audit.keyFile (its content)", t0.key, t1.key);
    c.Restart("audit.checkpointPath", t0.checkpoint_path, t1.checkpoint_path);
    c.Restart("audit.checkpointEvery", t0.checkpoint_every, t1.checkpoint_every);
    c.Restart("audit.checkpointSeconds", t0.checkpoint_interval, t1.checkpoint_interval);
    c.Restart("audit.rotateBytes", t0.rotate_bytes, t1.rotate_bytes);
    c.Restart("audit.rotateHours", t0.rotate_every, t1.rotate_every);
    c.Restart("audit.keepFiles", t0.keep_files, t1.keep_files);
    c.Restart("audit.keepHours", t0.keep_for, t1.keep_for);
    c.Restart("audit.fhirAuditEvents", t0.fhir_audit_events, t1.fhir_audit_events);

    c.Live("log.level", running.log_level, next.log_level);
    // The CDS routes hold their issuers' key caches and jti history: rebuilt only by a restart.
    c.Restart("cds", running.cds, next.cds);
    return changes;
}

ServiceConfig WithLiveKeys(ServiceConfig running, const ServiceConfig& next) {
    running.server.bearer_tokens = next.server.bearer_tokens;
    running.server.allow_anonymous = next.server.allow_anonymous;
    running.server.metrics_token = next.server.metrics_token;
    running.server.admin_token = next.server.admin_token;
    running.rules_path = next.rules_path;
    running.log_level = next.log_level;
    return running;
}

}  // namespace microcare::adapter
