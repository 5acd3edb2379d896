#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <string>

#include "adapter/audit/audit_log.hpp"
#include "adapter/metrics.hpp"
#include "adapter/server/http_server.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"

namespace microcare::adapter {

// MicroCare's inbound FHIR API: [base]/metadata, [base]/$process-message and
// [base]/notifications, plus /healthz, /readyz and /metrics. Every refusal is an
// OperationOutcome with the status that says why; every trigger is answered only once its job
// is on disk.
class FhirEndpoint {
public:
    FhirEndpoint(const ServerSettings& settings, JobStore& store, Metrics& metrics,
                 boost::asio::thread_pool& blocking, AuditLog& audit, std::function<bool()> ready);

    boost::asio::awaitable<HttpResponseOut> Handle(HttpRequestIn request);

    // The OperationOutcome answer for a refusal (also used by the HTTP layer).
    static HttpResponseOut Refusal(unsigned status, std::string_view code, const std::string& path,
                                   const std::string& message);

private:
    boost::asio::awaitable<HttpResponseOut> ProcessMessage(const HttpRequestIn& request,
                                                           std::string_view query);
    boost::asio::awaitable<HttpResponseOut> Notification(const HttpRequestIn& request,
                                                         std::string_view named_resource);
    boost::asio::awaitable<HttpResponseOut> MetricsPage();
    bool Authorised(const HttpRequestIn& request) const;

    ServerSettings settings_;
    JobStore& store_;
    Metrics& metrics_;
    boost::asio::thread_pool& blocking_;
    AuditLog& audit_;
    std::function<bool()> ready_;
};

}  // namespace microcare::adapter
