#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/audit/audit_log.hpp"
#include "adapter/client/ehr_health.hpp"
#include "adapter/clock.hpp"
#include "adapter/metrics.hpp"
#include "adapter/poll/poll_health.hpp"
#include "adapter/reload_report.hpp"
#include "adapter/server/flood_sampler.hpp"
#include "adapter/server/http_server.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"
#include "rules/pack_identity.hpp"

namespace microcare::adapter {

// MicroCare's inbound FHIR API: [base]/metadata, [base]/$process-message and
// [base]/notifications, plus /healthz, /readyz, /metrics and POST /admin/reload (the admin
// token only). Every refusal is an
// OperationOutcome with the status that says why; every trigger is answered only once its job
// is on disk.
class CdsRoutes;

class FhirEndpoint {
public:
    // What the endpoint asks the running service when a probe or /metrics is served: functions,
    // not copies, since each may change while the service runs (readiness, a reloaded pack, the
    // HTTP server's counts; the server is built after the endpoint it serves) and how to reload.
    struct LiveState {
        std::function<bool()> ready;  // can take triggers
        std::function<rules::PackIdentity()> pack;
        std::function<HttpServerStats()> edge;
        std::function<ReloadReport()> reload;  // empty: this service cannot reload (404)
        std::function<EhrHealth::Reading()> ehr;
        WallClock now;  // the service's clock, for the age of the oldest waiting job
        // Set when the service polls the EHR: /readyz shows whether the polls succeed.
        std::function<std::optional<PollHealth::Reading>()> poll = {};
    };

    FhirEndpoint(const ServerSettings& settings, JobStore& store, Metrics& metrics,
                 boost::asio::thread_pool& blocking, AuditLog& audit, LiveState live);

    // A reload changed the inbound credentials (EHR tokens, metrics and admin tokens): requests
    // admitted from now on are checked against these. Thread-safe.
    void SetCredentials(const ServerSettings& settings);

    boost::asio::awaitable<HttpResponseOut> Handle(HttpRequestIn request);

    // CDS Hooks (adapter/cds): requests below its path go there; nullptr: none configured.
    void SetCds(CdsRoutes* cds) { cds_ = cds; }

    // HttpServer's Admission: decides on the headers, before the body is read. The refusal (no
    // such endpoint, a method it does not take, missing credentials), counted and logged like
    // any answer, or nothing when the request may go on. Handle() applies the same gate.
    std::optional<HttpResponseOut> Admit(const HttpRequestIn& head);

    // HttpServer's RefusalWriter: the answer for a request refused below the FHIR layer
    // (malformed 400, too slow 408, too large 413/431, busy or stopping 503, version 505).
    static HttpResponseOut ProtocolRefusal(unsigned status, const std::string& reason);

private:
    boost::asio::awaitable<HttpResponseOut> ProcessMessage(const HttpRequestIn& request,
                                                           std::string_view query);
    boost::asio::awaitable<HttpResponseOut> Notification(const HttpRequestIn& request,
                                                         std::string_view named_resource);
    enum class Route {
        kHealth,
        kReady,
        kMetrics,
        kMetadata,
        kProcessMessage,
        kNotifications,
        kAdminReload,
        kUnknown
    };

    boost::asio::awaitable<HttpResponseOut> MetricsPage();
    // A re-sent trigger's record (its new job's went into the store with it): the same
    // fields, as `trigger-repeated`, with the job it found.
    boost::asio::awaitable<Result<void>> AuditRepeat(const AdminNote& note, std::int64_t job);
    // The refusal of a trigger while the audit trail cannot be written (after one more try):
    // its record would be committed with its job, but nothing more would reach the trail.
    boost::asio::awaitable<std::optional<HttpResponseOut>> TrailBroken(
        const HttpRequestIn& request);
    boost::asio::awaitable<HttpResponseOut> AdminReload();
    Route RouteOf(std::string_view path) const;
    // The refusal a request gets before anything is read or done for it, or nothing.
    std::optional<HttpResponseOut> Gate(const HttpRequestIn& request, Route route,
                                        std::string_view path) const;
    bool Authorised(const HttpRequestIn& request, Route route) const;
    std::optional<HttpResponseOut> AdminRefusal(const HttpRequestIn& request) const;

    // Who may call: replaced whole by a reload, read by every request.
    struct Credentials {
        std::vector<std::string> bearer_tokens;
        bool allow_anonymous = false;
        std::string metrics_token;
        std::string admin_token;
    };
    std::shared_ptr<const Credentials> CurrentCredentials() const;
    void Record(const HttpRequestIn& request, Route route, std::string_view path, unsigned status);
    static std::string_view RouteName(Route route);

    ServerSettings settings_;
    JobStore& store_;
    Metrics& metrics_;
    boost::asio::thread_pool& blocking_;
    AuditLog& audit_;
    LiveState live_;
    FloodSampler refusals_{20, std::chrono::minutes(1)};
    mutable std::mutex credentials_mutex_;
    std::shared_ptr<const Credentials> credentials_;
    CdsRoutes* cds_ = nullptr;
};

}  // namespace microcare::adapter
