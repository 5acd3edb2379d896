#pragma once

#include <array>
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "adapter/audit/audit_log.hpp"
#include "adapter/cds/cds_hooks.hpp"
#include "adapter/cds/cds_response.hpp"
#include "adapter/cds/cds_settings.hpp"
#include "adapter/cds/jwks.hpp"
#include "adapter/cds/jwt_verifier.hpp"
#include "adapter/client/http_client.hpp"
#include "adapter/clock.hpp"
#include "adapter/server/flood_sampler.hpp"
#include "adapter/server/http_server.hpp"
#include "rules/rule_set.hpp"

namespace microcare::adapter {

// CDS Hooks 2.0 on the service's HTTP server: GET [cds.path] (discovery), POST
// [cds.path]/{id} (a hook: cards), POST [cds.path]/{id}/feedback, and CORS preflights. Every
// hook call and feedback is authenticated by the EHR's JWT first; a refusal is a 401
// OperationOutcome, counted by reason and audited, and nothing is read or evaluated. Cards come
// from the one assessment pipeline (rules::RecordAssessment), on the prefetch or on what
// fhirServer returns.
class CdsRoutes {
public:
    struct Deps {
        std::function<std::shared_ptr<const rules::RuleSet>()> pack;
        AuditLog& audit;
        boost::asio::thread_pool& blocking;
        HttpClient& http;  // to fhirServer and the issuers' JWKS URLs
        WallClock now;
        JwksFetch fetch_jwks;  // empty: over `http`
    };

    CdsRoutes(CdsSettings settings, Deps deps);

    // Whether the path is the CDS services' (discovery or below it).
    bool Owns(std::string_view path) const;
    // On the headers: a refusal (no such service, wrong method, no JWT at all) or a CORS
    // preflight's answer; nothing to read the body and go on.
    std::optional<HttpResponseOut> Admit(const HttpRequestIn& head);
    boost::asio::awaitable<HttpResponseOut> Handle(HttpRequestIn request);

    // `microcare_cds_*` lines for /metrics.
    std::string Prometheus() const;

    const CdsSettings& settings() const { return settings_; }

private:
    struct Issued {
        IssuedCard card;
        std::string service;
        std::string hook_instance;
        std::string patient;
    };

    boost::asio::awaitable<HttpResponseOut> Hook(const HttpRequestIn& request,
                                                 const CdsServiceSpec& service,
                                                 const CdsClient& client);
    boost::asio::awaitable<HttpResponseOut> Feedback(const HttpRequestIn& request,
                                                     const CdsServiceSpec& service,
                                                     const CdsClient& client);
    // Counts and logs a refusal; the audit record to write, unless sampled out.
    std::optional<AuditLog::Record> CountRefusal(const HttpRequestIn& request,
                                                 std::string_view service, JwtRefusal why);
    static HttpResponseOut Unauthorized(JwtRefusal why);
    boost::asio::awaitable<HttpResponseOut> Unauthenticated(const HttpRequestIn& request,
                                                            std::string_view service,
                                                            JwtRefusal why);
    std::optional<HttpResponseOut> Route(const HttpRequestIn& head, std::string_view path,
                                         const CdsServiceSpec*& service, bool& feedback) const;
    void AddCors(const HttpRequestIn& request, HttpResponseOut& out) const;
    void Remember(std::vector<Issued> cards);
    std::optional<Issued> Recall(std::string_view uuid) const;
    std::string ServiceUrl(std::string_view id) const;

    const CdsSettings settings_;
    Deps deps_;
    JwksCache keys_;
    JwtVerifier verifier_;
    FloodSampler refusals_{20, std::chrono::minutes(1)};

    mutable std::mutex issued_mutex_;
    std::deque<std::string> issued_order_;
    std::unordered_map<std::string, Issued> issued_;

    std::atomic<std::uint64_t> calls_{0};
    std::array<std::atomic<std::uint64_t>, 3> cards_{};  // info, warning, critical
    std::array<std::atomic<std::uint64_t>, 12> jwt_refused_{};
    std::atomic<std::uint64_t> feedback_{0};
    std::atomic<std::uint64_t> fetches_{0};
    std::atomic<std::uint64_t> precondition_failed_{0};
};

}  // namespace microcare::adapter
