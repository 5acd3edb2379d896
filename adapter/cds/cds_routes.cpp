#include "adapter/cds/cds_routes.hpp"

#include "adapter/audit/audited.hpp"
#include "adapter/cds/cds_record.hpp"
#include "adapter/cds/cds_request.hpp"
#include "adapter/log.hpp"
#include "adapter/server/outcome_answer.hpp"
#include "adapter/server/request_text.hpp"
#include "fhir/json.hpp"
#include "rules/cds_cards.hpp"
#include "rules/record_assessment.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;

// What stays of the issued cards for feedback: enough for a clinician's answer within the
// hour, bounded so that a flood of calls cannot grow the memory.
constexpr std::size_t kIssuedCardsKept = 20000;
constexpr std::size_t kMaxTextInTrail = 128;  // request text in a trail record

HttpResponseOut JsonAnswer(std::string body) {
    HttpResponseOut out;
    out.content_type = "application/json";
    out.body = std::move(body);
    return out;
}

std::string Joined(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const std::string& item : items) out += (out.empty() ? "" : std::string(separator)) + item;
    return out;
}

// The record as one collection Bundle, for assessing several treatments on it: each run owns
// and views into its own parse.
std::string CollectionOf(const rules::RecordDocuments& record) {
    fhir::JsonWriter out;
    out.StartObject();
    out.Field("resourceType", "Bundle");
    out.Field("type", "collection");
    out.Key("entry");
    out.StartArray();
    for (fhir::Node resource : record.resources) {
        out.StartObject();
        out.Key("resource");
        out.Value(resource);
        out.EndObject();
    }
    out.EndArray();
    out.EndObject();
    return out.Take();
}

constexpr std::size_t kMaxJwksBytes = 1024 * 1024;

// Fetches a key set: GET, 2xx only, at most 1 MiB.
JwksFetch HttpJwksFetch(HttpClient& http) {
    return [&http](std::string url) -> asio::awaitable<std::optional<std::string>> {
        HttpRequest request;
        request.url = std::move(url);
        request.headers.emplace_back("Accept", "application/json");
        auto response = co_await http.Send(std::move(request));
        if (!response || response->status / 100 != 2 || response->body.size() > kMaxJwksBytes) {
            co_return std::nullopt;
        }
        co_return std::move(response->body);
    };
}

}  // namespace

CdsRoutes::CdsRoutes(CdsSettings settings, Deps deps)
    : settings_(std::move(settings)),
      deps_(std::move(deps)),
      keys_(settings_, deps_.fetch_jwks ? deps_.fetch_jwks : HttpJwksFetch(deps_.http), deps_.now),
      verifier_(settings_, keys_, deps_.now) {}

bool CdsRoutes::Owns(std::string_view path) const {
    return path == settings_.path || (path.starts_with(settings_.path) &&
                                      path.substr(settings_.path.size()).starts_with('/'));
}

std::string CdsRoutes::ServiceUrl(std::string_view id) const {
    return settings_.service_base_url + settings_.path + "/" + std::string(id);
}

void CdsRoutes::AddCors(const HttpRequestIn& request, HttpResponseOut& out) const {
    if (request.origin.empty()) return;
    for (const std::string& allowed : settings_.allowed_origins) {
        if (allowed == "*" || allowed == request.origin) {
            out.headers.emplace_back("Access-Control-Allow-Origin",
                                     allowed == "*" ? "*" : request.origin);
            out.headers.emplace_back("Vary", "Origin");
            out.headers.emplace_back("Access-Control-Expose-Headers", "X-Request-Id");
            return;
        }
    }
}

std::optional<HttpResponseOut> CdsRoutes::Route(const HttpRequestIn& head, std::string_view path,
                                                const CdsServiceSpec*& service,
                                                bool& feedback) const {
    service = nullptr;
    feedback = false;
    if (path == settings_.path) {
        if (head.method == "GET" || head.method == "OPTIONS") return std::nullopt;
        HttpResponseOut r = Refusal(405, "not-supported", "", "discovery takes GET");
        r.headers.emplace_back("Allow", "GET, OPTIONS");
        return r;
    }
    std::string_view rest = path.substr(settings_.path.size() + 1);
    if (rest.ends_with("/feedback")) {
        feedback = true;
        rest.remove_suffix(9);
    }
    service = FindCdsService(rest);
    if (service == nullptr) {
        return Refusal(404, "not-found", "",
                       "no such CDS service: " + Printable(rest, kMaxTextInTrail));
    }
    if (head.method != "POST" && head.method != "OPTIONS") {
        HttpResponseOut r = Refusal(405, "not-supported", "", "a CDS service takes POST");
        r.headers.emplace_back("Allow", "POST, OPTIONS");
        return r;
    }
    return std::nullopt;
}

std::optional<HttpResponseOut> CdsRoutes::Admit(const HttpRequestIn& head) {
    const std::string path = head.target.substr(0, head.target.find('?'));
    const CdsServiceSpec* service = nullptr;
    bool feedback = false;
    std::optional<HttpResponseOut> out = Route(head, path, service, feedback);
    if (!out && head.method == "POST" && !BearerToken(head.authorization)) {
        // No credential at all: refused on the headers, before a byte of the body is read.
        // Queued to the trail without waiting (as FhirEndpoint does): a refusal before the
        // body has no coroutine to wait in, and the I/O thread never waits for a sync.
        if (auto record = CountRefusal(head, service->id, JwtRefusal::kMissing)) {
            deps_.audit.AppendAsync(std::move(*record), [id = head.request_id](Result<void> r) {
                if (!r) Log::Error("cannot write the audit trail", {{"request", id}});
            });
        }
        out = Unauthorized(JwtRefusal::kMissing);
    }
    if (!out && head.method == "OPTIONS") {
        // A browser's preflight carries no credentials: it is answered on the headers alone.
        out = HttpResponseOut{204, "text/plain", "", {}};
        out->headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        out->headers.emplace_back("Access-Control-Allow-Headers", "Authorization, Content-Type");
        out->headers.emplace_back("Access-Control-Max-Age", "600");
    }
    if (out) AddCors(head, *out);
    return out;
}

asio::awaitable<HttpResponseOut> CdsRoutes::Handle(HttpRequestIn request) {
    const std::string path = request.target.substr(0, request.target.find('?'));
    const CdsServiceSpec* service = nullptr;
    bool feedback = false;
    std::optional<HttpResponseOut> refused = Admit(request);
    HttpResponseOut out;
    if (refused) {
        out = std::move(*refused);
    } else if (path == settings_.path) {
        out = JsonAnswer(DiscoveryJson());
        AddCors(request, out);
    } else {
        (void)Route(request, path, service, feedback);
        // The URL called, exactly: a token minted for another service (or another server)
        // does not open this one. Feedback is also accepted with the service's own URL, which
        // is what the specification names as the audience.
        const std::string audience = ServiceUrl(service->id) + (feedback ? "/feedback" : "");
        JwtCheck check = co_await verifier_.Verify(request.authorization, audience);
        if (!check.client && feedback && check.refusal == JwtRefusal::kAudience) {
            check = co_await verifier_.Verify(request.authorization, ServiceUrl(service->id));
        }
        if (!check.client) {
            out = co_await Unauthenticated(request, service->id, check.refusal);
        } else if (!IsJson(request.content_type)) {
            out = Refusal(415, "not-supported", "", "Content-Type must be application/json");
        } else if (feedback) {
            out = co_await Feedback(request, *service, *check.client);
        } else {
            out = co_await Hook(request, *service, *check.client);
        }
        AddCors(request, out);
    }
    Log::Info("request", {{"request", request.request_id},
                          {"method", request.method},
                          {"path", Printable(path, kMaxTextInTrail)},
                          {"status", std::to_string(out.status)}});
    co_return out;
}

std::optional<AuditLog::Record> CdsRoutes::CountRefusal(const HttpRequestIn& request,
                                                        std::string_view service, JwtRefusal why) {
    ++jwt_refused_[static_cast<std::size_t>(why)];
    Log::Warning("CDS client refused",
                 {{"request", request.request_id}, {"reason", ToString(why)}});
    // Sampled like the other refusals: a flood of bad tokens must not become a flood of
    // fsyncs; the count of those left out travels with the next record.
    std::uint64_t skipped = 0;
    if (!refusals_.Take(FloodSampler::Clock::now(), skipped)) return std::nullopt;
    return AuditLog::Record{"cds-refused",
                            {{"status", "401"},
                             {"reason", std::string(ToString(why))},
                             {"service", std::string(service)},
                             {"refusedUnrecordedBefore", std::to_string(skipped)},
                             {"request", request.request_id}}};
}

HttpResponseOut CdsRoutes::Unauthorized(JwtRefusal why) {
    HttpResponseOut out = Refusal(401, "login", "Authorization",
                                  "a valid CDS Hooks JWT from a configured issuer is required (" +
                                      std::string(ToString(why)) + ")");
    out.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"MicroCare CDS\"");
    return out;
}

asio::awaitable<HttpResponseOut> CdsRoutes::Unauthenticated(const HttpRequestIn& request,
                                                            std::string_view service,
                                                            JwtRefusal why) {
    if (auto record = CountRefusal(request, service, why)) {
        auto audited = co_await Audited(deps_.audit, std::move(*record));
        if (!audited) Log::Error("cannot write the audit trail", {{"request", request.request_id}});
    }
    co_return Unauthorized(why);
}

asio::awaitable<HttpResponseOut> CdsRoutes::Hook(const HttpRequestIn& request,
                                                 const CdsServiceSpec& service,
                                                 const CdsClient& client) {
    ++calls_;
    fhir::IssueList issues;
    auto body = fhir::JsonDocument::Parse(request.body, issues);
    if (!body) co_return Outcome(400, issues);
    auto hook = ParseHookRequest(body->Root(), service, issues);
    if (!hook) co_return Outcome(400, issues);

    const std::shared_ptr<const rules::RuleSet> pack = deps_.pack();
    const std::string patient = "Patient/" + hook->patient_id;
    std::vector<std::string> treatments;
    for (fhir::Node r : hook->proposed) {
        treatments.push_back(std::string(r["resourceType"].String()) + "/" +
                             std::string(r["id"].String()));
    }
    if (service.hook == CdsHook::kEncounterStart)
        treatments.push_back("Encounter/" + hook->encounter_id);
    // Nothing proposed that could be microneedling: no record is read at all.
    if (treatments.empty()) co_return JsonAnswer("{\"cards\":[]}");

    GatheredRecord gathered =
        co_await GatherRecord(std::move(*body), *hook, service.hook, *client.issuer, deps_.http);
    fetches_ += gathered.fetched;
    if (!gathered.record) {
        if (gathered.status == 412) ++precondition_failed_;
        co_return Outcome(gathered.status, gathered.issues);
    }

    const fhir::Instant now = deps_.now();
    std::vector<CardSet> sets;
    std::vector<std::string> findings;
    std::optional<std::string> collection;
    if (treatments.size() > 1) collection = CollectionOf(*gathered.record);
    rules::CardOptions options;
    options.suggest_delete_order = service.hook == CdsHook::kOrderSign;
    for (std::size_t i = 0; i < treatments.size(); ++i) {
        rules::EncounterChoice choice;
        choice.reference = treatments[i];
        choice.source =
            service.hook == CdsHook::kEncounterStart ? "context.encounterId" : "context";
        choice.proposed = true;
        choice.patient = patient;
        std::unique_ptr<const rules::RecordAssessment> run;
        if (collection) {
            run = rules::RecordAssessment::Run(*pack, *collection, choice, now, issues);
        } else {
            run = rules::RecordAssessment::Run(*pack, std::move(*gathered.record), choice, now,
                                               issues);
        }
        if (!run) co_return Outcome(422, issues);
        if (run->assessment().applies) {
            sets.push_back(
                CardSet{treatments[i], rules::BuildCards(*pack, run->assessment(), options)});
            findings.push_back(run->FindingsLine());
        }
    }
    std::vector<IssuedCard> issued;
    std::string answer = CardsJson(*pack, hook->hook_instance, sets, issued);

    std::vector<std::string> card_line;
    std::vector<Issued> remembered;
    const std::string hook_instance = Printable(hook->hook_instance, kMaxTextInTrail);
    for (IssuedCard& card : issued) {
        card_line.push_back(card.uuid + ":" + card.key + ":" + card.indicator);
        ++cards_[card.indicator == "critical" ? 2 : card.indicator == "warning" ? 1 : 0];
        remembered.push_back(
            Issued{std::move(card), std::string(service.id), hook_instance, patient});
    }
    Remember(std::move(remembered));
    // The advice is a decision: recorded (durably) before the EHR sees it.
    AuditLog::Record record{"cds-advice",
                            {{"service", std::string(service.id)},
                             {"hookInstance", hook_instance},
                             {"client", Printable(client.issuer->issuer, kMaxTextInTrail)},
                             {"patient", patient},
                             {"treatments", Joined(treatments, " ")},
                             {"findings", Joined(findings, " ")},
                             {"cards", Joined(card_line, " ")},
                             {"packSha256", pack->sha256},
                             {"request", request.request_id}}};
    auto audited = co_await Audited(deps_.audit, std::move(record));
    if (!audited) {
        HttpResponseOut out = Refusal(503, "transient", "", "the audit trail cannot be written");
        out.headers.emplace_back("Retry-After", "5");
        co_return out;
    }
    co_return JsonAnswer(std::move(answer));
}

asio::awaitable<HttpResponseOut> CdsRoutes::Feedback(const HttpRequestIn& request,
                                                     const CdsServiceSpec& service,
                                                     const CdsClient& client) {
    fhir::IssueList issues;
    auto body = fhir::JsonDocument::Parse(request.body, issues);
    if (!body) co_return Outcome(400, issues);
    fhir::Node items = body->Root()["feedback"];
    if (!items.IsArray()) co_return Refusal(400, "required", "feedback", "must be an array");
    struct Record {
        std::string card, outcome, reason, accepted;
        std::optional<Issued> issued;
    };
    std::vector<Record> records;
    for (std::size_t i = 0; i < items.Size(); ++i) {
        const std::string at = "feedback[" + std::to_string(i) + "]";
        fhir::Node item = items[i];
        Record r;
        r.card = std::string(item["card"].String());
        r.outcome = std::string(item["outcome"].String());
        if (r.card.empty()) issues.Error("required", at + ".card", "missing");
        if (r.outcome != "accepted" && r.outcome != "overridden") {
            issues.Error("value", at + ".outcome", "must be accepted or overridden");
        }
        // The reason's code, never the clinician's comment (free text).
        fhir::Node reason = item["overrideReason"]["reason"];
        if (reason.Exists()) {
            r.reason = Printable(reason["system"].String(), kMaxTextInTrail) + "|" +
                       Printable(reason["code"].String(), kMaxTextInTrail);
        }
        fhir::Node accepted = item["acceptedSuggestions"];
        for (std::size_t k = 0; k < accepted.Size(); ++k) {
            r.accepted += (k ? " " : "") + Printable(accepted[k]["id"].String(), kMaxTextInTrail);
        }
        r.card = Printable(r.card, kMaxTextInTrail);
        r.issued = Recall(r.card);
        records.push_back(std::move(r));
    }
    if (issues.HasErrors()) co_return Outcome(400, issues);
    const std::string issuer = Printable(client.issuer->issuer, kMaxTextInTrail);
    for (const Record& r : records) {
        ++feedback_;
        AuditLog::Record record{"cds-feedback",
                                {{"service", std::string(service.id)},
                                 {"card", r.card},
                                 {"outcome", r.outcome},
                                 {"overrideReason", r.reason},
                                 {"acceptedSuggestions", r.accepted},
                                 {"rule", r.issued ? r.issued->card.key : "unknown card"},
                                 {"treatment", r.issued ? r.issued->card.treatment : ""},
                                 {"patient", r.issued ? r.issued->patient : ""},
                                 {"hookInstance", r.issued ? r.issued->hook_instance : ""},
                                 {"client", issuer},
                                 {"request", request.request_id}}};
        auto audited = co_await Audited(deps_.audit, std::move(record));
        if (!audited) {
            HttpResponseOut out =
                Refusal(503, "transient", "", "the audit trail cannot be written");
            out.headers.emplace_back("Retry-After", "5");
            co_return out;
        }
    }
    co_return JsonAnswer("{}");
}

void CdsRoutes::Remember(std::vector<Issued> cards) {
    std::lock_guard lock(issued_mutex_);
    for (Issued& card : cards) {
        const std::string uuid = card.card.uuid;
        if (issued_.insert_or_assign(uuid, std::move(card)).second) issued_order_.push_back(uuid);
    }
    while (issued_order_.size() > kIssuedCardsKept) {
        issued_.erase(issued_order_.front());
        issued_order_.pop_front();
    }
}

std::optional<CdsRoutes::Issued> CdsRoutes::Recall(std::string_view uuid) const {
    std::lock_guard lock(issued_mutex_);
    auto found = issued_.find(std::string(uuid));
    if (found == issued_.end()) return std::nullopt;
    return found->second;
}

std::string CdsRoutes::Prometheus() const {
    std::string out;
    out +=
        "# HELP microcare_cds_calls_total CDS hook calls authenticated and answered or refused.\n";
    out += "# TYPE microcare_cds_calls_total counter\n";
    out += "microcare_cds_calls_total " + std::to_string(calls_.load()) + "\n";
    out += "# HELP microcare_cds_cards_total Cards sent, by indicator.\n";
    out += "# TYPE microcare_cds_cards_total counter\n";
    constexpr std::string_view kIndicators[] = {"info", "warning", "critical"};
    for (std::size_t i = 0; i < cards_.size(); ++i) {
        out += "microcare_cds_cards_total{indicator=\"" + std::string(kIndicators[i]) + "\"} " +
               std::to_string(cards_[i].load()) + "\n";
    }
    out += "# HELP microcare_cds_jwt_refused_total CDS calls refused with 401, by reason.\n";
    out += "# TYPE microcare_cds_jwt_refused_total counter\n";
    for (std::size_t i = 0; i < jwt_refused_.size(); ++i) {
        out += "microcare_cds_jwt_refused_total{reason=\"" +
               std::string(ToString(static_cast<JwtRefusal>(i))) + "\"} " +
               std::to_string(jwt_refused_[i].load()) + "\n";
    }
    out += "# HELP microcare_cds_feedback_total Feedback outcomes recorded.\n";
    out += "# TYPE microcare_cds_feedback_total counter\n";
    out += "microcare_cds_feedback_total " + std::to_string(feedback_.load()) + "\n";
    out += "# HELP microcare_cds_fhir_reads_total Reads from a CDS client's fhirServer.\n";
    out += "# TYPE microcare_cds_fhir_reads_total counter\n";
    out += "microcare_cds_fhir_reads_total " + std::to_string(fetches_.load()) + "\n";
    out += "# HELP microcare_cds_precondition_failed_total Hook calls answered 412.\n";
    out += "# TYPE microcare_cds_precondition_failed_total counter\n";
    out += "microcare_cds_precondition_failed_total " +
           std::to_string(precondition_failed_.load()) + "\n";
    return out;
}

}  // namespace microcare::adapter
