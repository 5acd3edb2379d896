// CDS Hooks 2.0 end to end, in process: the service on port 0 with a `cds` section, a fake EHR
// as the fhirServer, JWTs signed with keys made at test time. Requests follow the shape of the
// specification's own examples (hook pages of cds-hooks.org: appointments as the proposed
// Appointments, draftOrders as a Bundle, selections naming the new orders).
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <map>
#include <set>

#include "adapter/client/jwt.hpp"
#include "adapter/client/outbound_url.hpp"
#include "adapter/rule_pack_file.hpp"
#include "fhir/json.hpp"
#include "rules/record_assessment.hpp"
#include "service_harness.hpp"
#include "tests/unit/adapter/cds/cds_test_keys.hpp"

namespace microcare::testing {
namespace {

constexpr const char* kIssuer = "https://ehr.example/cds-client";
constexpr const char* kPublicBase = "https://microcare.test";
constexpr const char* kAccessToken = "ehr-access-token-for-cds-0123456789";
constexpr const char* kMicroneedling =
    R"json({"coding":[{"system":"https://microcare.example/CodeSystem/procedure","code":"microneedling","display":"Microneedling (collagen induction therapy)"}]})json";
constexpr const char* kPeel =
    R"({"coding":[{"system":"http://snomed.info/sct","code":"405720001"}],"text":"Chemical peel"})";

const TestKey& Rsa() {
    static const TestKey key = MakeRsaKey("ehr-rsa");
    return key;
}
const TestKey& Ec() {
    static const TestKey key = MakeP384Key("ehr-ec");
    return key;
}

std::string Get(const fhir::Node& node) { return std::string(node.String()); }

struct Card {
    std::string indicator, summary, detail, rule, uuid;
    bool override_reasons = false;
    std::string delete_resource = {}, selection_behavior = {};
};

std::vector<Card> CardsOf(const std::string& body) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(body, issues);
    EXPECT_TRUE(doc) << body;
    std::vector<Card> out;
    if (!doc) return out;
    fhir::Node cards = doc->Root()["cards"];
    EXPECT_TRUE(cards.IsArray()) << body;
    for (std::size_t i = 0; i < cards.Size(); ++i) {
        fhir::Node c = cards[i];
        Card card{Get(c["indicator"]), Get(c["summary"]), Get(c["detail"]),
                  Get(c["source"]["topic"]["code"]), Get(c["uuid"])};
        card.override_reasons = c["overrideReasons"].Size() > 0;
        card.delete_resource = Get(c["suggestions"][0]["actions"][0]["resourceId"][0]);
        card.selection_behavior = Get(c["selectionBehavior"]);
        EXPECT_FALSE(Get(c["source"]["label"]).empty());
        EXPECT_LT(card.summary.size(), 140u);
        out.push_back(std::move(card));
    }
    return out;
}

std::vector<Card> Having(const std::vector<Card>& cards, const std::string& indicator) {
    std::vector<Card> out;
    for (const Card& c : cards) {
        if (c.indicator == indicator) out.push_back(c);
    }
    return out;
}

class CdsTest : public ::testing::Test {
protected:
    void SetUp() override {
        ehr_ = std::make_unique<FakeEhr>();
        dir_ = FreshDirectory("cds");
    }
    void TearDown() override {
        if (service_) service_->Stop();
        service_.reset();
        ehr_->Stop();
        std::filesystem::remove_all(dir_);
    }

    void Start() {
        adapter::ServiceConfig config = TestConfig(ehr_->BaseUrl(), dir_);
        config.cds.enabled = true;
        config.cds.service_base_url = kPublicBase;
        config.cds.allowed_origins = {"https://ehr-app.test"};
        config.cds.issuers.push_back(adapter::CdsIssuer{
            kIssuer, {}, JwksOf({&Rsa(), &Ec()}), {*adapter::NormalHttpUrl(ehr_->BaseUrl())}});
        audit_path_ = config.audit.path;
        auto service = adapter::Service::Create(config, {});
        ASSERT_TRUE(service) << service.error().message();
        service_ = std::move(*service);
        service_->Start();
        base_ = "http://127.0.0.1:" + std::to_string(service_->port());
    }

    // A sample record on the fake EHR; the patient's id.
    std::string LoadSample(const std::string& file) {
        ehr_->Clear();
        ehr_->Load(ReadSource("config/examples/" + file));
        const auto patients = ehr_->All("Patient");
        EXPECT_EQ(patients.size(), 1u);
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(patients.at(0), issues);
        return Get(doc->Root()["id"]);
    }

    static std::string Searchset(const std::vector<std::string>& resources) {
        std::string out = R"({"resourceType":"Bundle","type":"searchset","entry":[)";
        for (std::size_t i = 0; i < resources.size(); ++i) {
            out += (i ? "," : "") + std::string(R"({"resource":)") + resources[i] + "}";
        }
        return out + "]}";
    }

    // What an EHR prefetches for the discovery's templates: the fake's record, by key.
    std::string Prefetch(const std::string& patient, const std::string& encounter = "",
                         const std::string& null_key = "") {
        std::map<std::string, std::string> keys = {
            {"patient", *ehr_->Get("Patient", patient)},
            {"conditions", Searchset(ehr_->All("Condition"))},
            {"allergies", Searchset(ehr_->All("AllergyIntolerance"))},
            {"medicationStatements", Searchset(ehr_->All("MedicationStatement"))},
            {"medicationAdministrations", Searchset(ehr_->All("MedicationAdministration"))},
            {"observations", Searchset(ehr_->All("Observation"))},
            {"procedures", Searchset(ehr_->All("Procedure"))},
            {"immunizations", Searchset(ehr_->All("Immunization"))},
            {"encounters", Searchset(ehr_->All("Encounter"))}};
        std::vector<std::string> requests = ehr_->All("MedicationRequest");
        for (const std::string& m : ehr_->All("Medication")) requests.push_back(m);
        keys["medicationRequests"] = Searchset(requests);
        if (!encounter.empty()) keys["encounter"] = *ehr_->Get("Encounter", encounter);
        std::string out = "{";
        for (const auto& [key, value] : keys) {
            out += (out.size() > 1 ? "," : "") + ("\"" + key + "\":") +
                   (key == null_key ? "null" : value);
        }
        return out + "}";
    }

    static std::string Appointment(const std::string& id, const std::string& patient,
                                   const std::string& service_type = kMicroneedling) {
        return R"({"resourceType":"Appointment","id":")" + id +
               R"(","status":"proposed","serviceType":[)" + service_type +
               R"(],"start":"2026-11-20T10:00:00+01:00","end":"2026-11-20T11:00:00+01:00","participant":[{"actor":{"reference":"Patient/)" +
               patient + R"("},"required":"required","status":"needs-action"}]})";
    }
    // appointment-book's context: one proposed microneedling appointment.
    static std::string Booking(const std::string& patient, const std::string& appointment) {
        return R"({"userId":"Practitioner/1","patientId":")" + patient + R"(","appointments":[)" +
               Appointment(appointment, patient) + "]}";
    }
    static std::string ServiceRequest(const std::string& id, const std::string& patient,
                                      const std::string& code = kMicroneedling) {
        return R"({"resourceType":"ServiceRequest","id":")" + id +
               R"(","status":"draft","intent":"order","code":)" + code +
               R"(,"subject":{"reference":"Patient/)" + patient +
               R"("},"occurrenceDateTime":"2026-11-20T10:00:00+01:00"})";
    }

    // Where the data comes from: prefetch (text of the object), and/or the fake as fhirServer.
    struct Source {
        std::string prefetch = {};
        std::string fhir_server = {};
        bool authorization = true;
    };
    std::string Request(const std::string& hook, const std::string& context, const Source& source,
                        const std::string& instance = "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea") {
        std::string out = R"({"hookInstance":")" + instance + R"(","hook":")" + hook + "\"";
        if (!source.fhir_server.empty()) {
            out += R"(,"fhirServer":")" + source.fhir_server + "\"";
            if (source.authorization) {
                out +=
                    std::string(R"(,"fhirAuthorization":{"access_token":")") + kAccessToken +
                    R"(","token_type":"Bearer","expires_in":300,"scope":"user/Patient.read user/Condition.read","subject":"cds-service"})";
            }
        }
        out += R"(,"context":)" + context;
        if (!source.prefetch.empty()) out += R"(,"prefetch":)" + source.prefetch;
        return out + "}";
    }

    std::string Token(const std::string& service, const TestKey& key = Rsa(),
                      const std::string& suffix = "") {
        const long long exp = std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch())
                                  .count() +
                              120;
        return SignedJwt(
            key, CdsClaims(kIssuer, std::string(kPublicBase) + "/cds-services/" + service + suffix,
                           exp, "jti-" + std::to_string(++jti_)));
    }

    Reply Call(const std::string& service, const std::string& body, std::string token = "-",
               const std::string& suffix = "") {
        if (token == "-") token = Token(service, Rsa(), suffix);
        std::vector<std::pair<std::string, std::string>> headers = {
            {"Content-Type", "application/json"}};
        if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
        return Send("POST", base_ + "/cds-services/" + service + suffix, body, std::move(headers));
    }

    std::string Audit() const {
        std::ifstream in(audit_path_);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }
    static std::size_t Occurrences(const std::string& text, const std::string& what) {
        std::size_t n = 0;
        for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
        return n;
    }

    std::unique_ptr<FakeEhr> ehr_;
    std::filesystem::path dir_;
    std::unique_ptr<adapter::Service> service_;
    std::string base_;
    std::string audit_path_;
    int jti_ = 0;
};

TEST_F(CdsTest, DiscoveryListsOneServicePerHookWithPrefetchTemplates) {
    Start();
    Reply reply = Send("GET", base_ + "/cds-services", "", {{"Origin", "https://ehr-app.test"}});
    ASSERT_EQ(reply.status, 200u) << reply.body;
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(reply.body, issues);
    ASSERT_TRUE(doc);
    std::set<std::string> hooks;
    fhir::Node services = doc->Root()["services"];
    for (std::size_t i = 0; i < services.Size(); ++i) {
        hooks.insert(Get(services[i]["hook"]));
        EXPECT_FALSE(Get(services[i]["id"]).empty());
        EXPECT_FALSE(Get(services[i]["description"]).empty());
        EXPECT_EQ(Get(services[i]["prefetch"]["patient"]), "Patient/{{context.patientId}}");
        EXPECT_NE(Get(services[i]["prefetch"]["medicationRequests"]).find("{{context.patientId}}"),
                  std::string::npos);
    }
    EXPECT_EQ(hooks, (std::set<std::string>{"appointment-book", "order-select", "order-sign",
                                            "encounter-start"}));
    bool cors = false;
    for (const auto& [name, value] : reply.headers) {
        cors |= name == "access-control-allow-origin" && value == "https://ehr-app.test";
    }
    EXPECT_TRUE(cors);

    // A browser's preflight is answered without credentials; an origin not configured gets no
    // CORS header.
    Reply preflight =
        Send("OPTIONS", base_ + "/cds-services/microcare-appointment-book", "",
             {{"Origin", "https://ehr-app.test"}, {"Access-Control-Request-Method", "POST"}});
    EXPECT_EQ(preflight.status, 204u);
    Reply other = Send("GET", base_ + "/cds-services", "", {{"Origin", "https://evil.test"}});
    for (const auto& [name, value] : other.headers) {
        EXPECT_NE(name, "access-control-allow-origin");
    }
}

TEST_F(CdsTest, AppointmentBookGivesACriticalCardForAnAbsoluteContraindication) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    Start();
    const std::string context = R"({"userId":"PractitionerRole/A2340113","patientId":")" + patient +
                                R"(","appointments":[)" + Appointment("apt1", patient) + "]}";
    Reply reply = Call("microcare-appointment-book",
                       Request("appointment-book", context, {Prefetch(patient)}));
    ASSERT_EQ(reply.status, 200u) << reply.body;
    const auto cards = CardsOf(reply.body);
    const auto critical = Having(cards, "critical");
    ASSERT_EQ(critical.size(), 1u) << reply.body;
    EXPECT_EQ(critical[0].rule, "A8");
    EXPECT_NE(critical[0].detail.find("MedicationRequest/"), std::string::npos);
    EXPECT_NE(critical[0].detail.find("Appointment.start 2026-11-20"), std::string::npos);
    EXPECT_NE(critical[0].detail.find("**Action:**"), std::string::npos);
    EXPECT_TRUE(critical[0].override_reasons);
    EXPECT_TRUE(critical[0].delete_resource.empty());  // a booking is not an order to delete
    ASSERT_EQ(Having(cards, "info").size(), 1u);
    EXPECT_NE(Having(cards, "info")[0].summary.find("session 1 of 3"), std::string::npos);
    // Prefetched: the fhirServer was not asked anything.
    EXPECT_TRUE(ehr_->Requests().empty());
    EXPECT_EQ(Occurrences(Audit(), "\"cds-advice\""), 1u);
    // The trail names ids, never the patient's name.
    EXPECT_EQ(Audit().find("Besson"), std::string::npos);
}

TEST_F(CdsTest, AppointmentBookGivesWarningsForRelativeOnesAndOnlyAftercareForACleanRecord) {
    const std::string patient = LoadSample("relative-anticoagulant.json");
    Start();
    const std::string bundle =
        R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":)" +
        Appointment("apt2", patient) + "}]}";
    Reply relative = Call("microcare-appointment-book",
                          Request("appointment-book",
                                  R"({"userId":"Practitioner/1","patientId":")" + patient +
                                      R"(","appointments":)" + bundle + "}",
                                  {Prefetch(patient)}));
    ASSERT_EQ(relative.status, 200u) << relative.body;
    auto cards = CardsOf(relative.body);
    EXPECT_TRUE(Having(cards, "critical").empty());
    std::set<std::string> rules;
    for (const Card& c : Having(cards, "warning")) {
        rules.insert(c.rule);
        EXPECT_TRUE(c.override_reasons);
    }
    EXPECT_TRUE(rules.count("R4")) << relative.body;
    EXPECT_TRUE(rules.count("R11")) << relative.body;

    const std::string clean = LoadSample("clean-first-session.json");
    Reply none = Call("microcare-appointment-book",
                      Request("appointment-book", Booking(clean, "apt3"), {Prefetch(clean)}));
    ASSERT_EQ(none.status, 200u) << none.body;
    cards = CardsOf(none.body);
    ASSERT_EQ(cards.size(), 1u) << none.body;
    EXPECT_EQ(cards[0].indicator, "info");
    EXPECT_FALSE(cards[0].override_reasons);
}

TEST_F(CdsTest, AnAppointmentThatIsNotMicroneedlingGetsNoCards) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    Start();
    Reply reply =
        Call("microcare-appointment-book",
             Request("appointment-book",
                     R"({"userId":"Practitioner/1","patientId":")" + patient +
                         R"(","appointments":[)" + Appointment("apt4", patient, kPeel) + "]}",
                     {Prefetch(patient)}));
    ASSERT_EQ(reply.status, 200u) << reply.body;
    EXPECT_EQ(reply.body, R"({"cards":[]})");
}

TEST_F(CdsTest, OrderSignSuggestsRemovingTheDraftOrderOnAnAbsoluteFinding) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    Start();
    // As the specification's order-sign example: a Bundle of draft orders of several kinds.
    const std::string drafts =
        R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"MedicationRequest","id":"smart-MedicationRequest-103","status":"draft","intent":"order","medicationCodeableConcept":{"text":"Amoxicillin"},"subject":{"reference":"Patient/)" +
        patient + R"("}}},{"resource":)" + ServiceRequest("sr-mn-1", patient) + "}]}";
    Reply reply = Call("microcare-order-sign",
                       Request("order-sign",
                               R"({"userId":"Practitioner/123","patientId":")" + patient +
                                   R"(","encounterId":"987654","draftOrders":)" + drafts + "}",
                               {Prefetch(patient)}));
    ASSERT_EQ(reply.status, 200u) << reply.body;
    const auto critical = Having(CardsOf(reply.body), "critical");
    ASSERT_EQ(critical.size(), 1u) << reply.body;
    EXPECT_EQ(critical[0].delete_resource, "ServiceRequest/sr-mn-1");
    EXPECT_EQ(critical[0].selection_behavior, "at-most-one");
    EXPECT_NE(critical[0].detail.find("ServiceRequest.occurrenceDateTime"), std::string::npos);
}

TEST_F(CdsTest, OrderSelectAssessesOnlyTheSelectedOrders) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    Start();
    const std::string drafts =
        R"({"resourceType":"Bundle","type":"collection","entry":[{"resource":)" +
        ServiceRequest("sr-a", patient) + R"(},{"resource":)" + ServiceRequest("sr-b", patient) +
        "}]}";
    Reply reply =
        Call("microcare-order-select",
             Request("order-select",
                     R"({"userId":"Practitioner/123","patientId":")" + patient +
                         R"(","selections":["ServiceRequest/sr-b"],"draftOrders":)" + drafts + "}",
                     {Prefetch(patient)}));
    ASSERT_EQ(reply.status, 200u) << reply.body;
    const auto cards = CardsOf(reply.body);
    EXPECT_EQ(Having(cards, "critical").size(), 1u);
    EXPECT_EQ(Having(cards, "info").size(), 1u);  // one treatment assessed, not two
    EXPECT_TRUE(Having(cards, "critical")[0].delete_resource.empty());  // order-select: no delete
}

TEST_F(CdsTest, PrefetchAndFhirServerGiveTheSameCards) {
    const std::string patient = LoadSample("relative-anticoagulant.json");
    Start();
    const std::string context = Booking(patient, "apt5");
    Reply prefetched = Call("microcare-appointment-book",
                            Request("appointment-book", context, {Prefetch(patient)}));
    ASSERT_EQ(prefetched.status, 200u) << prefetched.body;
    EXPECT_TRUE(ehr_->Requests().empty());
    Reply fetched = Call("microcare-appointment-book",
                         Request("appointment-book", context, {"", ehr_->BaseUrl()}));
    ASSERT_EQ(fetched.status, 200u) << fetched.body;
    EXPECT_EQ(fetched.body, prefetched.body);
    ASSERT_FALSE(ehr_->Requests().empty());
    for (const ReceivedRequest& r : ehr_->Requests()) {
        EXPECT_EQ(r.Header("authorization").value_or(""), std::string("Bearer ") + kAccessToken);
    }
    // A prefetch key the EHR could not fill (null) is read from the fhirServer alone.
    ehr_->ClearRequests();
    Reply partial = Call("microcare-appointment-book",
                         Request("appointment-book", context,
                                 {Prefetch(patient, "", "medicationStatements"), ehr_->BaseUrl()}));
    ASSERT_EQ(partial.status, 200u) << partial.body;
    EXPECT_EQ(partial.body, prefetched.body);
    ASSERT_EQ(ehr_->Requests().size(), 1u);
    EXPECT_EQ(ehr_->Requests()[0].resource_type, "MedicationStatement");
}

TEST_F(CdsTest, MissingPrefetchWithoutAFhirServerIs412) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    Start();
    const std::string context = Booking(patient, "apt6");
    Reply none = Call("microcare-appointment-book", Request("appointment-book", context, {}));
    EXPECT_EQ(none.status, 412u) << none.body;
    EXPECT_NE(none.body.find("OperationOutcome"), std::string::npos);
    Reply partial =
        Call("microcare-appointment-book",
             Request("appointment-book", context, {Prefetch(patient, "", "conditions")}));
    EXPECT_EQ(partial.status, 412u) << partial.body;
    EXPECT_NE(partial.body.find("prefetch.conditions"), std::string::npos);
    // A fhirServer without fhirAuthorization cannot be read either.
    Reply no_token = Call("microcare-appointment-book",
                          Request("appointment-book", context, {"", ehr_->BaseUrl(), false}));
    EXPECT_EQ(no_token.status, 412u) << no_token.body;
    EXPECT_TRUE(ehr_->Requests().empty());
    EXPECT_EQ(Occurrences(Audit(), "\"cds-advice\""), 0u);
}

TEST_F(CdsTest, AnUntrustedFhirServerIsNeverContacted) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    FakeEhr untrusted;
    untrusted.Load(ReadSource("config/examples/absolute-isotretinoin.json"));
    Start();
    const std::string context = Booking(patient, "apt7");
    Reply reply = Call("microcare-appointment-book",
                       Request("appointment-book", context, {"", untrusted.BaseUrl()}));
    EXPECT_EQ(reply.status, 412u) << reply.body;
    EXPECT_NE(reply.body.find("not a FHIR server trusted"), std::string::npos);
    EXPECT_TRUE(untrusted.Requests().empty());
    untrusted.Stop();
}

TEST_F(CdsTest, EncounterStartReadsTheEncounterFromTheFhirServer) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    Start();
    Reply reply = Call("microcare-encounter-start",
                       Request("encounter-start",
                               R"({"userId":"Practitioner/1","patientId":")" + patient +
                                   R"(","encounterId":"enc-mn-20261120"})",
                               {"", ehr_->BaseUrl()}));
    ASSERT_EQ(reply.status, 200u) << reply.body;
    EXPECT_EQ(Having(CardsOf(reply.body), "critical").size(), 1u);
    EXPECT_EQ(ehr_->RequestCount("GET", RequestKind::kRead, "Encounter"), 1u);
}

// Every refusal of the issue's list: 401, nothing read, nothing evaluated, counted, audited.
TEST_F(CdsTest, EveryJwtRefusalIs401AndNothingIsEvaluated) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    Start();
    const std::string service = "microcare-appointment-book";
    const std::string body =
        Request("appointment-book", Booking(patient, "apt8"), {"", ehr_->BaseUrl()});
    const std::string aud = std::string(kPublicBase) + "/cds-services/" + service;
    const long long now = std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
    const TestKey stranger = MakeRsaKey("ehr-rsa");  // a configured kid, another key
    const TestKey unknown = MakeRsaKey("not-configured");
    const std::string good = SignedJwt(Rsa(), CdsClaims(kIssuer, aud, now + 120, "once"));
    std::string tampered = good;
    {
        const std::size_t first = tampered.find('.');
        const std::size_t second = tampered.find('.', first + 1);
        tampered = tampered.substr(0, first) + "." +
                   adapter::Base64UrlEncode(CdsClaims(kIssuer, aud, now + 240, "once")) +
                   tampered.substr(second);
    }
    ASSERT_EQ(Call(service, body, good).status, 200u);  // then replayed below
    const std::size_t advice = Occurrences(Audit(), "\"cds-advice\"");
    ehr_->ClearRequests();

    const std::vector<std::pair<std::string, std::string>> refused = {
        {"no token", ""},
        {"wrong issuer", SignedJwt(Rsa(), CdsClaims("https://evil.example", aud, now + 120, "r1"))},
        {"configured issuer, unknown key",
         SignedJwt(stranger, CdsClaims(kIssuer, aud, now + 120, "r2"))},
        {"wrong audience",
         SignedJwt(Rsa(), CdsClaims(kIssuer,
                                    std::string(kPublicBase) + "/cds-services/microcare-order-sign",
                                    now + 120, "r3"))},
        {"expired", SignedJwt(Rsa(), CdsClaims(kIssuer, aud, now - 120, "r4"))},
        {"exp too far ahead", SignedJwt(Rsa(), CdsClaims(kIssuer, aud, now + 3600, "r5"))},
        {"replayed jti", good},
        {"alg none", UnsignedJwt("ehr-rsa", CdsClaims(kIssuer, aud, now + 120, "r6"))},
        {"HS256 with the public key",
         HmacJwt(Rsa().public_pem, "ehr-rsa", CdsClaims(kIssuer, aud, now + 120, "r7"))},
        {"tampered payload", tampered},
        {"unknown kid", SignedJwt(unknown, CdsClaims(kIssuer, aud, now + 120, "r8"))},
        {"jku outside the configured URLs",
         SignedJwt(Rsa(), CdsClaims(kIssuer, aud, now + 120, "r9"),
                   R"(,"jku":"https://attacker.example/jwks.json")")},
    };
    for (const auto& [what, token] : refused) {
        Reply reply = Call(service, body, token);
        EXPECT_EQ(reply.status, 401u) << what << ": " << reply.body;
        EXPECT_NE(reply.body.find("OperationOutcome"), std::string::npos) << what;
    }
    EXPECT_TRUE(ehr_->Requests().empty());
    const std::string audit = Audit();
    EXPECT_EQ(Occurrences(audit, "\"cds-advice\""), advice);
    EXPECT_EQ(Occurrences(audit, "\"cds-refused\""), refused.size());
    // The trail never holds a token.
    EXPECT_EQ(audit.find(good.substr(0, 40)), std::string::npos);
    Reply metrics =
        Send("GET", base_ + "/metrics", "", {{"Authorization", std::string("Bearer ") + kToken}});
    EXPECT_NE(metrics.body.find("microcare_cds_jwt_refused_total{reason=\"replayed\"} 1"),
              std::string::npos)
        << metrics.body;
    // "no token" was refused on the headers, before the body.
    EXPECT_NE(metrics.body.find("microcare_cds_jwt_refused_total{reason=\"missing\"} 1"),
              std::string::npos);
    EXPECT_NE(metrics.body.find("microcare_cds_jwt_refused_total{reason=\"jku\"} 1"),
              std::string::npos);
}

TEST_F(CdsTest, HostileRequestsGetAPreciseRefusal) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    Start();
    Reply not_json = Call("microcare-appointment-book", "{\"hook\":");
    EXPECT_EQ(not_json.status, 400u);
    Reply wrong_hook = Call("microcare-appointment-book",
                            Request("order-sign", R"({"patientId":"p","draftOrders":[]})", {}));
    EXPECT_EQ(wrong_hook.status, 400u);
    EXPECT_NE(wrong_hook.body.find("\"hook\""), std::string::npos) << wrong_hook.body;
    Reply injection =
        Call("microcare-appointment-book",
             Request("appointment-book", R"({"patientId":"1&_id=2","appointments":[]})",
                     {"", ehr_->BaseUrl()}));
    EXPECT_EQ(injection.status, 400u);
    EXPECT_NE(injection.body.find("context.patientId"), std::string::npos);
    // An appointment for someone else than the hook's patient is not assessed on this record.
    Reply other = Call("microcare-appointment-book",
                       Request("appointment-book",
                               R"({"patientId":")" + patient + R"(","appointments":[)" +
                                   Appointment("apt-x", "someone-else") + "]}",
                               {Prefetch(patient)}));
    EXPECT_EQ(other.status, 400u);
    EXPECT_NE(other.body.find("another patient"), std::string::npos) << other.body;
    Reply no_service = Call("nope", "{}");
    EXPECT_EQ(no_service.status, 404u);
    EXPECT_TRUE(ehr_->Requests().empty());
}

TEST_F(CdsTest, FeedbackIsAuditedAgainstTheCardThePatientAndTheHookInstance) {
    const std::string patient = LoadSample("absolute-isotretinoin.json");
    Start();
    Reply reply =
        Call("microcare-appointment-book", Request("appointment-book", Booking(patient, "apt9"),
                                                   {Prefetch(patient)}, "hook-instance-42"));
    ASSERT_EQ(reply.status, 200u);
    const auto critical = Having(CardsOf(reply.body), "critical");
    ASSERT_EQ(critical.size(), 1u);
    const std::string feedback =
        R"({"feedback":[{"card":")" + critical[0].uuid +
        R"(","outcome":"overridden","overrideReason":{"reason":{"code":"reviewed-not-applicable","system":"https://microcare.example/fhir/CodeSystem/cds-override-reason"},"userComment":"Patient Chloe says she stopped"},"outcomeTimestamp":"2026-11-20T09:55:00Z"}]})";
    Reply answer = Call("microcare-appointment-book", feedback,
                        Token("microcare-appointment-book", Ec(), "/feedback"), "/feedback");
    ASSERT_EQ(answer.status, 200u) << answer.body;
    const std::string audit = Audit();
    const auto at = audit.find("\"cds-feedback\"");
    ASSERT_NE(at, std::string::npos);
    const std::string line = audit.substr(at, audit.find('\n', at) - at);
    EXPECT_NE(line.find(critical[0].uuid), std::string::npos);
    EXPECT_NE(line.find("A8"), std::string::npos);
    EXPECT_NE(line.find("Patient/" + patient), std::string::npos);
    EXPECT_NE(line.find("hook-instance-42"), std::string::npos);
    EXPECT_NE(line.find("reviewed-not-applicable"), std::string::npos);
    EXPECT_EQ(audit.find("stopped"), std::string::npos);  // free text never
    // An outcome that is neither is refused and not recorded.
    Reply bad =
        Call("microcare-appointment-book", R"({"feedback":[{"card":"x","outcome":"ignored"}]})",
             Token("microcare-appointment-book", Rsa(), "/feedback"), "/feedback");
    EXPECT_EQ(bad.status, 400u);
    EXPECT_EQ(Occurrences(Audit(), "\"cds-feedback\""), 1u);
}

// For each sample record: the critical and warning cards of encounter-start name the same rules
// and evidence as the DetectedIssues `microcare evaluate` writes (high: critical, moderate:
// warning).
TEST_F(CdsTest, CardsNameTheSameEvidenceAsTheDetectedIssuesOfEvaluate) {
    Start();
    fhir::IssueList pack_issues;
    auto pack = adapter::LoadRulePackFile(
        std::string(MICROCARE_SOURCE_DIR) + "/config/rules/microneedling.json", pack_issues);
    ASSERT_TRUE(pack);
    fhir::IssueList issues;
    auto expected = fhir::JsonDocument::Parse(ReadSource("config/examples/expected.json"), issues);
    ASSERT_TRUE(expected);
    int compared = 0;
    std::size_t findings = 0;
    expected->Root().ForEachMember([&](std::string_view file, fhir::Node want) {
        const std::string encounter = Get(want["encounter"]);
        if (encounter.empty()) return;
        SCOPED_TRACE(std::string(file));
        // What evaluate writes.
        fhir::IssueList run_issues;
        auto run = rules::RecordAssessment::Run(
            *pack, ReadSource("config/examples/" + std::string(file)), rules::EncounterChoice{},
            fhir::DateTime::Parse("2026-11-24T12:00:00Z")->Earliest(), run_issues);
        ASSERT_TRUE(run);
        auto tx = fhir::JsonDocument::Parse(run->TransactionJson(), run_issues);
        std::multiset<std::string> issued;  // "indicator rule ref ref ..."
        fhir::Node entries = tx->Root()["entry"];
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            fhir::Node r = entries[i]["resource"];
            if (r["resourceType"].String() != "DetectedIssue") continue;
            const std::string severity = Get(r["severity"]);
            if (severity == "low") continue;
            std::string key = (severity == "high" ? "critical" : "warning");
            fhir::Node codes = r["code"]["coding"];
            for (std::size_t c = 0; c < codes.Size(); ++c) {
                if (codes[c]["system"].String() == "https://microcare.example/fhir/CodeSystem/rule")
                    key += " " + Get(codes[c]["code"]);
            }
            for (std::size_t k = 0; k < r["implicated"].Size(); ++k)
                key += " " + Get(r["implicated"][k]["reference"]);
            issued.insert(key);
        }
        // What the CDS service says at encounter-start.
        const std::string patient = LoadSample(std::string(file));
        const std::string id = encounter.substr(encounter.find('/') + 1);
        Reply reply = Call("microcare-encounter-start",
                           Request("encounter-start",
                                   R"({"userId":"Practitioner/1","patientId":")" + patient +
                                       R"(","encounterId":")" + id + "\"}",
                                   {Prefetch(patient, id)}));
        ASSERT_EQ(reply.status, 200u) << reply.body;
        std::multiset<std::string> carded;
        for (const Card& card : CardsOf(reply.body)) {
            if (card.indicator == "info") continue;
            std::string key = card.indicator + " " + card.rule;
            // The detail lists each evidence resource as "- Type/id (...".
            for (auto at = card.detail.find("\n- "); at != std::string::npos;
                 at = card.detail.find("\n- ", at + 1)) {
                key += " " + card.detail.substr(at + 3, card.detail.find(' ', at + 3) - at - 3);
            }
            carded.insert(key);
        }
        EXPECT_EQ(carded, issued) << reply.body;
        ++compared;
        findings += issued.size();
    });
    EXPECT_GE(compared, 7);
    EXPECT_GE(findings, 5u);  // the comparison is not of empty sets
}

}  // namespace
}  // namespace microcare::testing
