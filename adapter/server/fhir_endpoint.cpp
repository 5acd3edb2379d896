#include "adapter/server/fhir_endpoint.hpp"

#include <openssl/crypto.h>

#include <boost/url/parse_query.hpp>
#include <chrono>
#include <optional>

#include "adapter/async_util.hpp"
#include "adapter/audit/audit_key.hpp"
#include "adapter/audit/audited.hpp"
#include "adapter/cds/cds_routes.hpp"
#include "adapter/jobs/job_contract.hpp"
#include "adapter/jobs/notification.hpp"
#include "adapter/log.hpp"
#include "adapter/server/inbound.hpp"
#include "adapter/server/outcome_answer.hpp"
#include "adapter/server/readiness.hpp"
#include "adapter/server/request_text.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;

fhir::Instant Now() {
    return std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
}

HttpResponseOut Information(const std::string& message) {
    fhir::IssueList issues;
    issues.Add(fhir::IssueSeverity::kInformation, "informational", "", message);
    return Outcome(200, issues);
}

HttpResponseOut Json(unsigned status, std::string body) {
    HttpResponseOut out;
    out.status = status;
    out.body = std::move(body);
    return out;
}

// Constant-time comparison: how much of a token matched must not show in the timing.
bool SameSecret(std::string_view a, std::string_view b) {
    return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// Who sent a request, as the audit trail names it: the verified certificate's subject, or a
// fingerprint of the bearer token (never the token; an admin tells which configured token it
// is with `printf %s TOKEN | sha256sum`).
std::string Caller(const HttpRequestIn& request) {
    if (!request.client_certificate.empty()) return "certificate " + request.client_certificate;
    if (auto token = BearerToken(request.authorization)) {
        return "token sha256:" + Sha256Hex(*token).substr(0, 16);
    }
    return request.authorization.empty() ? "no credential" : "a credential that is not a token";
}

// A store failure is the EHR's cue to send the trigger again later.
HttpResponseOut Unavailable(const std::string& what) {
    HttpResponseOut out = Refusal(503, "transient", "", what);
    out.headers.emplace_back("Retry-After", "5");
    return out;
}

// A trigger that cannot be audited is not acknowledged. A repeat's job is journaled, so the
// sender's re-send finds it (and is audited as a repeat) once the trail can be written again.
HttpResponseOut Unaudited(Metrics& metrics, const HttpRequestIn& request,
                          const boost::system::error_code& error) {
    ++metrics.audit_failures;
    Log::Error("cannot write the audit trail",
               {{"request", request.request_id}, {"error", error.message()}});
    return Unavailable("the audit trail cannot be written; send it again later");
}

// A trigger's record: its channel, its client, what identifies it (`message`, `trigger`), the
// encounter and the request. A new job's is committed with it (the store adds `job`).
AdminNote TriggerNote(const HttpRequestIn& request, std::string channel,
                      std::pair<std::string, std::string> identified_by, std::string encounter) {
    return AdminNote{0,
                     "trigger",
                     {{"channel", std::move(channel)},
                      {"client", Caller(request)},
                      std::move(identified_by),
                      {"encounter", std::move(encounter)},
                      {"request", request.request_id}}};
}

// Journals a job; resumes the coroutine once it is on disk. A plain function, not a coroutine:
// g++ 12 mis-moves objects captured by value into lambdas inside co_await expressions, so the
// job travels as an ordinary argument instead.
auto Journal(JobStore& store, NewJob job) {
    return AwaitCallback<Result<Enqueued>>(
        [&store, shared = std::make_shared<NewJob>(std::move(job))](auto done) {
            store.EnqueueAsync(std::move(*shared), std::move(done));
        });
}

struct Target {
    std::string path;
    std::string query;
};

Target SplitTarget(std::string_view target) {
    auto q = target.find('?');
    return {std::string(target.substr(0, q)),
            q == std::string_view::npos ? std::string() : std::string(target.substr(q + 1))};
}

std::optional<std::string> QueryParam(std::string_view query, std::string_view name) {
    auto parsed = boost::urls::parse_query(query);
    if (!parsed) return std::nullopt;
    for (const auto& param : *parsed) {
        // Keys and values arrive percent-encoded (a response-url certainly is).
        if (param.key.decode() == name) return param.value.decode();
    }
    return std::nullopt;
}

}  // namespace

FhirEndpoint::FhirEndpoint(const ServerSettings& settings, JobStore& store, Metrics& metrics,
                           asio::thread_pool& blocking, AuditLog& audit, LiveState live)
    : settings_(settings),
      store_(store),
      metrics_(metrics),
      blocking_(blocking),
      audit_(audit),
      live_(std::move(live)) {
    SetCredentials(settings);
}

void FhirEndpoint::SetCredentials(const ServerSettings& settings) {
    auto next = std::make_shared<const Credentials>(
        Credentials{settings.bearer_tokens, settings.allow_anonymous, settings.metrics_token,
                    settings.admin_token});
    std::lock_guard lock(credentials_mutex_);
    credentials_ = std::move(next);
}

std::shared_ptr<const FhirEndpoint::Credentials> FhirEndpoint::CurrentCredentials() const {
    std::lock_guard lock(credentials_mutex_);
    return credentials_;
}

HttpResponseOut FhirEndpoint::ProtocolRefusal(unsigned status, const std::string& reason) {
    std::string_view code = "invalid";
    switch (status) {
        case 408:
            code = "timeout";
            break;
        case 413:
        case 431:
            code = "too-costly";
            break;
        case 503:
            code = "transient";
            break;
        case 505:
            code = "not-supported";
            break;
        default:
            break;
    }
    HttpResponseOut out = Refusal(status, code, "", reason);
    if (status == 503) out.headers.emplace_back("Retry-After", "5");
    return out;
}

FhirEndpoint::Route FhirEndpoint::RouteOf(std::string_view path) const {
    const std::string& base = settings_.base_path;
    if (path == "/healthz") return Route::kHealth;
    if (path == "/readyz") return Route::kReady;
    if (path == "/metrics") return Route::kMetrics;
    if (path == "/admin/reload") return Route::kAdminReload;
    if (path == base + "/metadata") return Route::kMetadata;
    if (path == base + "/$process-message" || path == base + "/%24process-message") {
        return Route::kProcessMessage;
    }
    if (path == base + "/notifications" || path.starts_with(base + "/notifications/")) {
        return Route::kNotifications;
    }
    return Route::kUnknown;
}

bool FhirEndpoint::Authorised(const HttpRequestIn& request, Route route) const {
    if (!request.client_certificate.empty()) return true;
    const std::shared_ptr<const Credentials> credentials = CurrentCredentials();
    if (auto token = BearerToken(request.authorization)) {
        bool match = false;
        // Every token is compared, so the position of a match does not show either.
        for (const std::string& allowed : credentials->bearer_tokens)
            match |= SameSecret(*token, allowed);
        // The metrics token opens /metrics and nothing else.
        if (route == Route::kMetrics && !credentials->metrics_token.empty())
            match |= SameSecret(*token, credentials->metrics_token);
        if (match) return true;
    }
    return credentials->allow_anonymous && request.authorization.empty();
}

// The admin endpoint takes the admin token and nothing else: not an EHR's token, not a client
// certificate (that is an EHR's identity), not anonymous access. No credential is 401; a
// credential that is not the admin token is 403, so a caller can tell "log in" from "not you".
std::optional<HttpResponseOut> FhirEndpoint::AdminRefusal(const HttpRequestIn& request) const {
    const std::shared_ptr<const Credentials> credentials = CurrentCredentials();
    auto token = BearerToken(request.authorization);
    if (!token) {
        HttpResponseOut r = Refusal(401, "login", "", "the admin bearer token is required");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"MicroCare admin\"");
        return r;
    }
    if (credentials->admin_token.empty()) {
        return Refusal(403, "forbidden", "",
                       "admin requests are turned off: set server.adminToken (or use SIGHUP)");
    }
    if (!SameSecret(*token, credentials->admin_token)) {
        return Refusal(403, "forbidden", "", "this credential may not make admin requests");
    }
    return std::nullopt;
}

std::optional<HttpResponseOut> FhirEndpoint::Gate(const HttpRequestIn& request, Route route,
                                                  std::string_view path) const {
    auto method_not_allowed = [&](std::string allow) {
        HttpResponseOut r = Refusal(405, "not-supported", "",
                                    request.method + " is not supported on " + Printable(path) +
                                        " (allowed: " + allow + ")");
        r.headers.emplace_back("Allow", allow);
        return r;
    };
    std::string_view allowed = "GET";
    bool needs_credentials = false;
    switch (route) {
        case Route::kUnknown:
            return Refusal(404, "not-found", "", "no such endpoint: " + Printable(path));
        case Route::kHealth:
        case Route::kReady:
        case Route::kMetadata:
            break;
        case Route::kMetrics:
            needs_credentials = true;  // the counts tell how busy and how risky the clinic is
            break;
        case Route::kProcessMessage:
            allowed = "POST";
            needs_credentials = true;
            break;
        case Route::kNotifications:
            allowed = "POST, PUT";
            needs_credentials = true;
            break;
        case Route::kAdminReload:
            if (request.method != "POST") return method_not_allowed("POST");
            return AdminRefusal(request);
    }
    const bool method_ok = route == Route::kNotifications
                               ? request.method == "POST" || request.method == "PUT"
                               : request.method == allowed;
    if (!method_ok) return method_not_allowed(std::string(allowed));
    if (needs_credentials && !Authorised(request, route)) {
        HttpResponseOut r =
            Refusal(401, "login", "", "a valid bearer token or client certificate is required");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"MicroCare\"");
        return r;
    }
    return std::nullopt;
}

std::string_view FhirEndpoint::RouteName(Route route) {
    switch (route) {
        case Route::kHealth:
            return "healthz";
        case Route::kReady:
            return "readyz";
        case Route::kMetrics:
            return "metrics";
        case Route::kMetadata:
            return "metadata";
        case Route::kProcessMessage:
            return "$process-message";
        case Route::kNotifications:
            return "notifications";
        case Route::kAdminReload:
            return "admin/reload";
        case Route::kUnknown:
            break;
    }
    return "unknown";
}

void FhirEndpoint::Record(const HttpRequestIn& request, Route route, std::string_view path,
                          unsigned status) {
    if (status >= 400 && status < 500) ++metrics_.requests_refused;
    // Who tried to get in without the right to: part of the record (sampled, see
    // FloodSampler), never the credential itself. Queued to the trail's writer without
    // waiting: a refusal before the body has no coroutine to wait in, and the I/O thread never
    // waits for a sync; a record the trail cannot take is counted there.
    std::uint64_t skipped = 0;
    if ((status == 401 || status == 403) && refusals_.Take(FloodSampler::Clock::now(), skipped)) {
        audit_.AppendAsync(
            AuditLog::MakeRecord("request-refused",
                                 {{"status", std::to_string(status)},
                                  {"endpoint", RouteName(route)},
                                  {"client", Caller(request)},
                                  {"refusedUnrecordedBefore", std::to_string(skipped)},
                                  {"request", request.request_id}}),
            [](Result<void>) {});
    }
    Log::Info("request", {{"request", request.request_id},
                          {"method", request.method},
                          {"path", Printable(path)},
                          {"status", std::to_string(status)}});
}

std::optional<HttpResponseOut> FhirEndpoint::Admit(const HttpRequestIn& head) {
    const Target target = SplitTarget(head.target);
    if (cds_ != nullptr && cds_->Owns(target.path)) {
        auto answered = cds_->Admit(head);
        if (answered) ++metrics_.requests;
        if (answered && answered->status >= 400) ++metrics_.requests_refused;
        return answered;
    }
    const Route route = RouteOf(target.path);
    auto refused = Gate(head, route, target.path);
    if (refused) {
        ++metrics_.requests;
        Record(head, route, target.path, refused->status);
    }
    return refused;
}

asio::awaitable<HttpResponseOut> FhirEndpoint::Handle(HttpRequestIn request) {
    ++metrics_.requests;
    const Target target = SplitTarget(request.target);
    if (cds_ != nullptr && cds_->Owns(target.path)) {
        HttpResponseOut answer = co_await cds_->Handle(std::move(request));
        if (answer.status >= 400 && answer.status < 500) ++metrics_.requests_refused;
        co_return answer;
    }
    const std::string& path = target.path;
    const std::string& base = settings_.base_path;
    const Route route = RouteOf(path);
    // The same gate as Admit, for callers that did not ask it first.
    std::optional<HttpResponseOut> refused = Gate(request, route, path);
    HttpResponseOut out;
    // No co_await inside a conditional expression: g++ 12 destroys its temporaries early.
    if (refused) {
        out = std::move(*refused);
    } else if (route == Route::kHealth) {
        out = HttpResponseOut{200, "text/plain", "ok\n", {}};
    } else if (route == Route::kReady) {
        // A trail that failed is tried again here (off the I/O thread), so that the service
        // heals by itself once the cause is gone, even with no trigger arriving. A healthy
        // trail costs a probe no hop to the pool.
        bool trail_ok = audit_.health().writable;
        if (!trail_ok) {
            trail_ok =
                (co_await Offload(blocking_, [this] { return audit_.Resume(); })).has_value();
        }
        const Readiness readiness{live_.ready() && trail_ok, live_.ehr(), trail_ok,
                                  live_.poll ? live_.poll() : std::nullopt};
        out = HttpResponseOut{
            readiness.HttpStatus(), "application/json", ReadinessJson(readiness, live_.pack()), {}};
    } else if (route == Route::kMetrics) {
        out = co_await MetricsPage();
    } else if (route == Route::kAdminReload) {
        out = co_await AdminReload();
    } else if (route == Route::kMetadata) {
        out = Json(200, CapabilityStatementJson(base, Now(), live_.pack()));
    } else if (route == Route::kProcessMessage) {
        out = co_await ProcessMessage(request, target.query);
    } else {
        std::string named = path.size() > base.size() + 15 ? path.substr(base.size() + 15) : "";
        out = co_await Notification(request, named);
    }
    Record(request, route, path, out.status);
    co_return out;
}

asio::awaitable<HttpResponseOut> FhirEndpoint::AdminReload() {
    if (!live_.reload) co_return Refusal(404, "not-found", "", "this service cannot reload");
    // Files and an fsync'd audit record: off the I/O threads.
    ReloadReport report = co_await Offload(blocking_, live_.reload);
    if (report.applied()) co_return Json(200, report.Json());
    if (report.outcome == ReloadReport::Outcome::kUnaudited) {
        ++metrics_.audit_failures;
        co_return Unavailable(report.Summary());
    }
    co_return Outcome(422, report.RefusalIssues());
}

asio::awaitable<HttpResponseOut> FhirEndpoint::ProcessMessage(const HttpRequestIn& request,
                                                              std::string_view query) {
    if (!IsJson(request.content_type)) {
        co_return Refusal(415, "not-supported", "",
                          "Content-Type must be application/fhir+json, not \"" +
                              Printable(request.content_type) + "\"");
    }
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(request.body, issues);
    if (!doc) co_return Outcome(400, issues);

    MessageOptions options;
    options.endpoint_name = settings_.endpoint_name;
    options.is_async = QueryParam(query, "async").value_or("") == "true";
    options.response_url = QueryParam(query, "response-url").value_or("");
    options.allowed_response_urls = settings_.allowed_response_urls;
    auto trigger = ParseProcessMessage(doc->Root(), options, Now(), issues);
    if (!trigger) co_return Outcome(422, issues);
    if (trigger->fatal) co_return Json(200, trigger->response);

    const std::string bundle_id = trigger->job.message->bundle_id;
    const std::string encounter = trigger->job.encounter;
    auto broken = co_await TrailBroken(request);
    if (broken) co_return std::move(*broken);
    const AdminNote note =
        TriggerNote(request, "$process-message", {"message", bundle_id}, encounter);
    trigger->job.note = note;
    auto enqueued = co_await Journal(store_, std::move(trigger->job));
    if (!enqueued) {
        if (enqueued.error() == Error::kConflict) {
            co_return Refusal(409, "conflict", "Bundle.id",
                              "Bundle.id " + bundle_id +
                                  " was already used by a message with another MessageHeader.id");
        }
        Log::Error("cannot journal a message",
                   {{"request", request.request_id}, {"error", enqueued.error().message()}});
        co_return Unavailable("the message could not be journaled; send it again later");
    }
    if (!enqueued->created) {
        auto audited = co_await AuditRepeat(note, enqueued->job_id);
        if (!audited) co_return Unaudited(metrics_, request, audited.error());
        ++metrics_.triggers_duplicate;
        Log::Info("re-sent message answered from the store",
                  {{"request", request.request_id}, {"job", std::to_string(enqueued->job_id)}});
        if (trigger->is_async) co_return Information("message already accepted");
        co_return Json(200, enqueued->stored_response);
    }
    ++metrics_.triggers_accepted;
    Log::Info("message journaled",
              {{"request", request.request_id}, {"job", std::to_string(enqueued->job_id)}});
    if (trigger->is_async) {
        HttpResponseOut accepted = Information("message accepted; the response will be sent later");
        accepted.status = 202;
        co_return accepted;
    }
    co_return Json(200, trigger->response);
}

asio::awaitable<HttpResponseOut> FhirEndpoint::Notification(const HttpRequestIn& request,
                                                            std::string_view named_resource) {
    fhir::IssueList issues;
    std::optional<fhir::JsonDocument> doc;
    const bool empty = request.body.find_first_not_of(" \t\r\n") == std::string::npos;
    if (!empty) {
        if (!IsJson(request.content_type)) {
            co_return Refusal(415, "not-supported", "",
                              "Content-Type must be application/fhir+json, not \"" +
                                  Printable(request.content_type) + "\"");
        }
        doc = fhir::JsonDocument::Parse(request.body, issues);
        if (!doc) co_return Outcome(400, issues);
    }
    auto notification = ParseNotification(doc ? &*doc : nullptr, named_resource, issues);
    if (!notification) co_return Outcome(422, issues);

    std::vector<NewJob> jobs;
    std::size_t duplicates = 0;
    if (notification->type == Notification::Type::kR4Resource) {
        // R4 notifications carry no event number: each is a trigger of its own, and the
        // idempotent write-back keeps repeats harmless.
        jobs.push_back(R4NotificationJob(notification->r4_encounter, request.request_id));
    } else {
        const std::string& sub = notification->subscription;
        // Captures by reference only: g++ 12 destroys by-value captures of a lambda temporary in a
        // co_await expression twice.
        auto last = co_await AwaitCallback<Result<std::int64_t>>(
            [this, &sub](auto done) { store_.LastEventNumberAsync(sub, std::move(done)); });
        if (!last) co_return Unavailable("the notification could not be journaled; send it again");
        std::int64_t expected = *last + 1;
        for (const Notification::Event& event : notification->events) {
            if (event.number < expected) {
                ++duplicates;
                continue;
            }
            if (event.number > expected) {
                ++metrics_.subscription_gaps;
                Log::Warning("subscription event gap", {{"subscription", sub},
                                                        {"from", std::to_string(expected)},
                                                        {"to", std::to_string(event.number - 1)}});
                jobs.push_back(RecoverJob(sub, expected, event.number - 1, std::nullopt));
            }
            if (event.encounter.empty()) {
                jobs.push_back(RecoverJob(sub, event.number, event.number,
                                          SubscriptionEvent{sub, event.number}));
            } else {
                jobs.push_back(SubscriptionEventJob(sub, event.number, event.encounter));
            }
            expected = event.number + 1;
        }
        // A heartbeat or handshake that counts more events than we saw reveals a gap too.
        if (notification->events.empty() && notification->events_since_start &&
            *notification->events_since_start >= expected) {
            ++metrics_.subscription_gaps;
            jobs.push_back(RecoverJob(sub, expected, *notification->events_since_start,
                                      SubscriptionEvent{sub, *notification->events_since_start}));
        }
        Log::Info("notification", {{"request", request.request_id},
                                   {"subscription", sub},
                                   {"type", ToString(notification->type)}});
        // Handshakes and heartbeats make no job, but they are part of the record.
        if (notification->events.empty()) {
            AuditLog::Record record = AuditLog::MakeRecord(
                "subscription-status",
                {{"subscription", sub},
                 {"client", Caller(request)},
                 {"type", ToString(notification->type)},
                 {"eventsSinceStart", notification->events_since_start
                                          ? std::to_string(*notification->events_since_start)
                                          : std::string()},
                 {"request", request.request_id}});
            auto audited = co_await Audited(audit_, std::move(record));
            if (!audited) co_return Unaudited(metrics_, request, audited.error());
        }
    }
    if (!jobs.empty()) {
        auto broken = co_await TrailBroken(request);
        if (broken) co_return std::move(*broken);
    }
    for (NewJob& job : jobs) {
        job.note =
            TriggerNote(request, "notification", {"trigger", job.trigger_key}, job.encounter);
        const AdminNote note = *job.note;
        auto enqueued = co_await Journal(store_, std::move(job));
        if (!enqueued)
            co_return Unavailable("the notification could not be journaled; send it again");
        if (enqueued->created) {
            ++metrics_.triggers_accepted;
            continue;
        }
        ++duplicates;
        auto audited = co_await AuditRepeat(note, enqueued->job_id);
        if (!audited) co_return Unaudited(metrics_, request, audited.error());
    }
    metrics_.triggers_duplicate += duplicates;
    co_return Information(std::to_string(jobs.size()) + " job(s) journaled, " +
                          std::to_string(duplicates) + " repeated event(s) ignored");
}

asio::awaitable<Result<void>> FhirEndpoint::AuditRepeat(const AdminNote& note, std::int64_t job) {
    AuditLog::Record record{"trigger-repeated", note.fields};
    record.fields.emplace_back("job", std::to_string(job));
    co_return co_await Audited(audit_, std::move(record));
}

asio::awaitable<std::optional<HttpResponseOut>> FhirEndpoint::TrailBroken(
    const HttpRequestIn& request) {
    if (audit_.health().writable) co_return std::nullopt;
    auto resumed = co_await Offload(blocking_, [this] { return audit_.Resume(); });
    if (resumed) co_return std::nullopt;
    co_return Unaudited(metrics_, request, resumed.error());
}

asio::awaitable<HttpResponseOut> FhirEndpoint::MetricsPage() {
    LiveReadings live = co_await Offload(blocking_, [this] {
        auto count = [this](JobState state) -> std::uint64_t {
            auto n = store_.CountByState(state);
            return n ? *n : 0;
        };
        LiveReadings read;
        read.queued = count(JobState::kQueued);
        read.running = count(JobState::kRunning);
        read.dead = count(JobState::kDead);
        auto oldest = store_.OldestWaiting();
        if (oldest && *oldest) {
            const auto age =
                std::chrono::duration_cast<std::chrono::seconds>(live_.now() - **oldest);
            read.oldest_waiting_seconds =
                static_cast<std::uint64_t>(std::max<long long>(age.count(), 0));
        }
        return read;
    });
    live.pack = live_.pack();
    live.edge = live_.edge();
    live.ehr_up = live_.ehr().up();
    HttpResponseOut page;
    page.content_type = "text/plain; version=0.0.4";
    page.body = metrics_.Prometheus(live);
    if (cds_ != nullptr) page.body += cds_->Prometheus();
    co_return page;
}

}  // namespace microcare::adapter
