#include "adapter/service_config.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "adapter/service_config_diff.hpp"
#include "adapter/store/job_store.hpp"
#include "tests/unit/adapter/cds/cds_test_keys.hpp"

namespace microcare::adapter {
namespace {

const std::string kMinimal = R"({
  "server": {"port": 0, "auth": {"bearerTokens": ["${EHR_TOKEN}"]}},
  "ehr": {"baseUrl": "https://ehr.example/fhir/"}
})";

struct Parsed {
    std::optional<ServiceConfig> config;
    fhir::IssueList issues;
};

Parsed Parse(const std::string& json, std::map<std::string, std::string> env = {
                                          {"EHR_TOKEN", "a-long-enough-secret-token"}}) {
    Parsed p;
    EnvLookup lookup = [env](const std::string& name) -> std::optional<std::string> {
        auto it = env.find(name);
        if (it == env.end()) return std::nullopt;
        return it->second;
    };
    FileReader files = [](const std::string& path) -> std::optional<std::string> {
        if (path == "/secrets/key.pem") return std::string("-----BEGIN PRIVATE KEY-----\n...\n");
        if (path == "/secrets/audit.key") return std::string(64, 'k') + "\n";
        if (path == "/secrets/short.key") return std::string("too-short\n");
        return std::nullopt;
    };
    p.config = ParseServiceConfig(json, lookup, files, p.issues);
    return p;
}

bool HasIssue(const Parsed& p, const std::string& path, const std::string& words) {
    for (const fhir::Issue& issue : p.issues) {
        if (issue.path == path && issue.message.find(words) != std::string::npos) return true;
    }
    return false;
}

std::string All(const Parsed& p) {
    std::string all;
    for (const fhir::Issue& issue : p.issues) all += fhir::FormatIssue(issue) + "\n";
    return all;
}

// A reload names every key it cannot apply, audit.fhirAuditEvents among them.
TEST(ServiceConfig, ChangingWhetherWritesAreAuditedOnTheEhrNeedsARestart) {
    ServiceConfig running;
    ServiceConfig next = running;
    next.audit.fhir_audit_events = !running.audit.fhir_audit_events;
    const ConfigChanges changes = CompareServiceConfigs(running, next);
    EXPECT_EQ(changes.restart_needed, std::vector<std::string>{"audit.fhirAuditEvents"});
    EXPECT_TRUE(changes.live.empty());
}

// Issue 13: the store several replicas share. The URL's password comes from the environment
// (or libpq's passfile), never from the file; a store named twice is refused at its path.
TEST(ServiceConfig, StoreUrlSelectsThePostgresStoreAndItsPasswordComesFromTheEnvironment) {
    Parsed p = Parse(R"({
      "server": {"port": 0, "auth": {"bearerTokens": ["${EHR_TOKEN}"]}},
      "ehr": {"baseUrl": "https://ehr.example/fhir/"},
      "store": {"url": "postgresql://microcare:${PG_PASSWORD}@db.internal/microcare"}
    })",
                     {{"EHR_TOKEN", "a-long-enough-secret-token"}, {"PG_PASSWORD", "s3cret"}});
    ASSERT_TRUE(p.config) << All(p);
    EXPECT_EQ(p.config->store.Location(), "postgresql://microcare:s3cret@db.internal/microcare");
    EXPECT_FALSE(p.config->store.IsFile());
    EXPECT_EQ(RedactStoreLocation(p.config->store.Location()),
              "postgresql://microcare:***@db.internal/microcare");
    // The trail is in the database too: one chain for every replica.
    EXPECT_EQ(p.config->audit.database, p.config->store.Location());
    EXPECT_TRUE(Parse(kMinimal).config->store.IsFile());  // SQLite stays the default
    EXPECT_TRUE(Parse(kMinimal).config->audit.database.empty());
}

// Settings of trail files beside a PostgreSQL store would split the one chain into one per
// replica: refused, each at its path.
TEST(ServiceConfig, TrailFilesBesideAPostgresStoreAreRefused) {
    Parsed p = Parse(R"({
      "server": {"port": 0, "auth": {"bearerTokens": ["${EHR_TOKEN}"]}},
      "ehr": {"baseUrl": "https://ehr.example/fhir/"},
      "store": {"url": "postgresql://db.internal/microcare"},
      "audit": {"path": "/var/lib/microcare/audit.log", "keepFiles": 3,
                "keyFile": "/secrets/audit.key"}
    })",
                     {{"EHR_TOKEN", "a-long-enough-secret-token"}});
    EXPECT_FALSE(p.config);
    EXPECT_TRUE(HasIssue(p, "audit.path", "audit trail in its database")) << All(p);
    EXPECT_TRUE(HasIssue(p, "audit.keepFiles", "audit trail in its database")) << All(p);
    EXPECT_FALSE(HasIssue(p, "audit.keyFile", "")) << All(p);  // the key seals the one chain
}

TEST(ServiceConfig, StoreUrlMistakesAreNamedByTheirPathWithoutTheUrl) {
    Parsed both = Parse(R"({
      "server": {"port": 0, "auth": {"bearerTokens": ["${EHR_TOKEN}"]}},
      "ehr": {"baseUrl": "https://ehr.example/fhir/"},
      "store": {"path": "/var/lib/microcare/microcare.db", "url": "postgresql://db/microcare"}
    })");
    EXPECT_FALSE(both.config);
    EXPECT_TRUE(HasIssue(both, "store.url", "set one")) << All(both);
    Parsed other = Parse(R"({
      "server": {"port": 0, "auth": {"bearerTokens": ["${EHR_TOKEN}"]}},
      "ehr": {"baseUrl": "https://ehr.example/fhir/"},
      "store": {"url": "mysql://root:hunter2@db/microcare"}
    })");
    EXPECT_FALSE(other.config);
    EXPECT_TRUE(HasIssue(other, "store.url", "postgresql://")) << All(other);
    EXPECT_EQ(All(other).find("hunter2"), std::string::npos);
}

TEST(ServiceConfig, ChangingTheStoreUrlNeedsARestart) {
    ServiceConfig running;
    ServiceConfig next = running;
    next.store.url = "postgresql://db/microcare";
    EXPECT_EQ(CompareServiceConfigs(running, next).restart_needed,
              std::vector<std::string>{"store.url"});
}

TEST(ServiceConfig, MinimalConfigGetsDefaultsAndSecretsFromTheEnvironment) {
    Parsed p = Parse(kMinimal);
    ASSERT_TRUE(p.config) << All(p);
    EXPECT_EQ(p.config->server.bearer_tokens.at(0), "a-long-enough-secret-token");
    EXPECT_EQ(p.config->ehr.base_url, "https://ehr.example/fhir");  // trailing slash dropped
    EXPECT_EQ(p.config->server.base_path, "/fhir");
    EXPECT_EQ(p.config->worker.max_attempts, 0);  // transient failures: retried for max_age
    EXPECT_EQ(p.config->ehr.auth.kind, AuthSettings::Kind::kNone);
}

// Issue 10: an EHR outage of hours must end with every job done. By default a transient
// failure is retried for a day, however many attempts that takes, never waiting more than five
// minutes between two; the policy is the configuration's to shorten or lengthen.
TEST(ServiceConfig, TransientFailuresAreRetriedForADayBackingOffToFiveMinutesByDefault) {
    using namespace std::chrono_literals;
    Parsed defaults = Parse(kMinimal);
    ASSERT_TRUE(defaults.config) << All(defaults);
    const WorkerSettings& w = defaults.config->worker;
    EXPECT_EQ(w.max_attempts, 0);
    EXPECT_GE(w.max_age, 24h);
    EXPECT_EQ(w.backoff_max, 5min);
    EXPECT_EQ(w.backoff_initial, 1s);

    Parsed p = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"},
      "worker": {"maxAgeSeconds": 172800, "backoffInitialMs": 500, "backoffMaxMs": 60000}})");
    ASSERT_TRUE(p.config) << All(p);
    EXPECT_EQ(p.config->worker.max_age, 48h);
    EXPECT_EQ(p.config->worker.backoff_initial, 500ms);
    EXPECT_EQ(p.config->worker.backoff_max, 1min);
}

TEST(ServiceConfig, ResponseUrlsAreTheMessageEndpointAndTheAllowedOnesInNormalForm) {
    Parsed none = Parse(kMinimal);
    ASSERT_TRUE(none.config);
    EXPECT_TRUE(none.config->server.allowed_response_urls.empty());

    Parsed p = Parse(
        R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir",
      "messageEndpoint": "https://EHR.example:443/fhir/$process-message",
      "allowedResponseUrls": ["https://hub.example/a/./b"]}})");
    ASSERT_TRUE(p.config) << All(p);
    EXPECT_EQ(p.config->server.allowed_response_urls,
              (std::vector<std::string>{"https://hub.example/a/b",
                                        "https://ehr.example/fhir/$process-message"}));

    Parsed bad = Parse(
        R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir",
      "messageEndpoint": "file:///etc/passwd", "allowedResponseUrls": ["https://a/", 3]}})");
    EXPECT_FALSE(bad.config);
    EXPECT_TRUE(HasIssue(bad, "ehr.messageEndpoint", "http")) << All(bad);
    EXPECT_TRUE(HasIssue(bad, "ehr.allowedResponseUrls[1]", "string")) << All(bad);
}

TEST(ServiceConfig, MissingEnvironmentVariableIsNamedButNoValueIsShown) {
    Parsed p = Parse(kMinimal, {});
    EXPECT_FALSE(p.config);
    EXPECT_TRUE(HasIssue(p, "server.auth.bearerTokens[0]", "EHR_TOKEN is not set")) << All(p);
}

TEST(ServiceConfig, EveryMistakeIsReportedWithItsPath) {
    Parsed p = Parse(R"({
      "server": {"port": 70000, "basePath": "fhir/", "auth": {"bearerTokens": ["short"]}, "tsl": {}},
      "worker": {"concurrency": 0, "backoffInitialMs": 5000, "backoffMaxMs": 1000},
      "ehr": {"baseUrl": "ftp://x", "auth": {"type": "smart-backend", "algorithm": "HS256"}},
      "log": {"level": "loud"}
    })");
    EXPECT_FALSE(p.config);
    EXPECT_TRUE(HasIssue(p, "server.port", "from 0 to 65535")) << All(p);
    EXPECT_TRUE(HasIssue(p, "server.basePath", "must start with /")) << All(p);
    EXPECT_TRUE(HasIssue(p, "server.auth.bearerTokens[0]", "too short")) << All(p);
    EXPECT_TRUE(HasIssue(p, "server.tsl", "unknown key")) << All(p);
    EXPECT_TRUE(HasIssue(p, "worker.concurrency", "from 1")) << All(p);
    EXPECT_TRUE(HasIssue(p, "worker.backoffInitialMs", "must not exceed")) << All(p);
    EXPECT_TRUE(HasIssue(p, "ehr.baseUrl", "http:// or https://")) << All(p);
    EXPECT_TRUE(HasIssue(p, "ehr.auth.clientId", "required")) << All(p);
    EXPECT_TRUE(HasIssue(p, "ehr.auth.algorithm", "RS384 or ES384")) << All(p);
    EXPECT_TRUE(HasIssue(p, "log.level", "must be")) << All(p);
}

TEST(ServiceConfig, SmartBackendKeyComesFromAFile) {
    Parsed p = Parse(R"({
      "server": {"auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir",
              "auth": {"type": "smart-backend", "clientId": "microcare", "privateKeyFile": "/secrets/key.pem",
                       "algorithm": "ES384", "keyId": "k1"}}
    })");
    ASSERT_TRUE(p.config) << All(p);
    EXPECT_EQ(p.config->ehr.auth.kind, AuthSettings::Kind::kSmartBackend);
    EXPECT_NE(p.config->ehr.auth.private_key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
    Parsed missing = Parse(R"({"server": {"auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://x/fhir", "auth": {"type": "bearer", "tokenFile": "/nope"}}})");
    EXPECT_TRUE(HasIssue(missing, "ehr.auth.tokenFile", "cannot read")) << All(missing);
}

TEST(ServiceConfig, NoInboundAuthenticationIsRefused) {
    Parsed p = Parse(R"({"server": {"auth": {}}, "ehr": {"baseUrl": "https://x/fhir"}})");
    EXPECT_FALSE(p.config);
    EXPECT_TRUE(HasIssue(p, "server.auth", "every request would be refused")) << All(p);
}

TEST(ServiceConfig, TlsNeedsItsFiles) {
    Parsed p = Parse(R"({"server": {"auth": {"allowAnonymous": true},
      "tls": {"certificateFile": "c.pem", "requireClientCertificate": true}},
      "ehr": {"baseUrl": "https://x/fhir"}})");
    EXPECT_FALSE(p.config);
    EXPECT_TRUE(HasIssue(p, "server.tls", "privateKeyFile are required")) << All(p);
    EXPECT_TRUE(HasIssue(p, "server.tls.clientCaFile", "required when")) << All(p);
}

TEST(ServiceConfig, TheAuditTrailsKeyCheckpointRotationAndRetention) {
    Parsed defaults = Parse(kMinimal);
    ASSERT_TRUE(defaults.config) << All(defaults);
    EXPECT_TRUE(defaults.config->audit.key.empty());
    // The checkpoint lives beside the store, apart from the trail.
    EXPECT_EQ(defaults.config->audit.checkpoint_path, "var/audit.log.checkpoint");

    Parsed p = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"},
      "store": {"path": "/var/lib/microcare/db/microcare.db"},
      "audit": {"path": "/var/log/microcare/audit.log", "keyFile": "/secrets/audit.key",
                "checkpointEvery": 10, "checkpointSeconds": 30, "rotateBytes": 1048576,
                "keepFiles": 24}})");
    ASSERT_TRUE(p.config) << All(p);
    const AuditSettings& a = p.config->audit;
    EXPECT_EQ(a.key, std::string(64, 'k'));  // the newline dropped
    EXPECT_EQ(a.key_file, "/secrets/audit.key");
    EXPECT_EQ(a.checkpoint_path, "/var/lib/microcare/db/audit.log.checkpoint");
    EXPECT_EQ(a.checkpoint_every, 10u);
    EXPECT_EQ(a.checkpoint_interval, std::chrono::seconds(30));
    EXPECT_EQ(a.rotate_bytes, 1048576u);
    EXPECT_EQ(a.keep_files, 24u);

    Parsed bad = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"},
      "audit": {"keyFile": "/secrets/short.key", "rotateBytes": 100, "keepFiles": -1,
                "checkpointEvery": 0, "key": "inline"}})");
    EXPECT_FALSE(bad.config);
    EXPECT_TRUE(HasIssue(bad, "audit.keyFile", "at least 32 bytes")) << All(bad);
    EXPECT_TRUE(HasIssue(bad, "audit.rotateBytes", "65536")) << All(bad);
    EXPECT_TRUE(HasIssue(bad, "audit.keepFiles", "whole number")) << All(bad);
    EXPECT_TRUE(HasIssue(bad, "audit.checkpointEvery", "whole number")) << All(bad);
    EXPECT_TRUE(HasIssue(bad, "audit.key", "unknown key")) << All(bad);
    // The key itself is never in a message.
    EXPECT_EQ(All(bad).find("too-short"), std::string::npos) << All(bad);

    Parsed missing = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"}, "audit": {"keyFile": "/nowhere"}})");
    EXPECT_TRUE(HasIssue(missing, "audit.keyFile", "cannot read")) << All(missing);
}

std::string WithCds(const std::string& cds) {
    return R"({"server": {"port": 0, "auth": {"bearerTokens": ["${EHR_TOKEN}"]}},
               "ehr": {"baseUrl": "https://ehr.example/fhir/"}, "cds": )" +
           cds + "}";
}

TEST(ServiceConfig, CdsIsOffWithoutItsSectionAndReadsIssuersWithTheirKeys) {
    EXPECT_FALSE(Parse(kMinimal).config->cds.enabled);
    const testing::TestKey key = testing::MakeP384Key("k1");
    const std::string jwks = testing::JwksOf({&key});
    Parsed p = Parse(WithCds(R"({"serviceBaseUrl": "https://microcare.clinic.example/",
        "allowedOrigins": ["https://ehr-app.example"],
        "issuers": [{"iss": "https://ehr.example", "jwks": )" +
                             jwks + R"(,
                     "jwksUrls": ["https://ehr.example/.well-known/jwks.json"],
                     "fhirServers": ["https://ehr.example/fhir/"]}]})"));
    ASSERT_TRUE(p.config) << All(p);
    const CdsSettings& cds = p.config->cds;
    EXPECT_TRUE(cds.enabled);
    EXPECT_EQ(cds.service_base_url, "https://microcare.clinic.example");
    EXPECT_EQ(cds.path, "/cds-services");
    ASSERT_EQ(cds.issuers.size(), 1u);
    EXPECT_EQ(cds.issuers[0].fhir_servers.at(0), "https://ehr.example/fhir");
    EXPECT_EQ(cds.issuers[0].jwks_urls.at(0), "https://ehr.example/.well-known/jwks.json");
    EXPECT_EQ(cds.max_token_lifetime, std::chrono::seconds(300));
}

TEST(ServiceConfig, CdsProblemsAreNamedByTheirPath) {
    Parsed p = Parse(WithCds(R"({"path": "cds/", "issuers": [
        {"iss": "https://a.example"},
        {"iss": "https://b.example", "jwks": {"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}},
        {"iss": "https://c.example", "jwksUrls": ["file:///etc/passwd"], "fhirSevers": []}],
        "allowedOrigins": ["https://ehr.example/app"], "clockSkewSeconds": 3600})"));
    EXPECT_FALSE(p.config);
    EXPECT_TRUE(HasIssue(p, "cds.serviceBaseUrl", "missing")) << All(p);
    EXPECT_TRUE(HasIssue(p, "cds.path", "must start with /")) << All(p);
    EXPECT_TRUE(HasIssue(p, "cds.issuers[0]", "needs jwksUrls or jwks")) << All(p);
    EXPECT_TRUE(HasIssue(p, "cds.issuers[1].jwks", "P-384")) << All(p);
    EXPECT_TRUE(HasIssue(p, "cds.issuers[2].jwksUrls[0]", "http")) << All(p);
    EXPECT_TRUE(HasIssue(p, "cds.issuers[2].fhirSevers", "unknown key")) << All(p);
    EXPECT_TRUE(HasIssue(p, "cds.allowedOrigins[0]", "origin")) << All(p);
    EXPECT_TRUE(HasIssue(p, "cds.clockSkewSeconds", "")) << All(p);
}

}  // namespace
}  // namespace microcare::adapter

namespace microcare::adapter {
namespace {

// Issue 12: polling is off without a `poll` section, on with one, and every mistake in it is
// named by its path before anything starts.
TEST(ServiceConfig, APollSectionTurnsPollingOnWithItsDefaults) {
    using namespace std::chrono_literals;
    Parsed none = Parse(kMinimal);
    ASSERT_TRUE(none.config) << All(none);
    EXPECT_FALSE(none.config->poll.enabled);

    Parsed p = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"},
      "poll": {"intervalMs": 15000, "since": "2026-12-01T00:00:00+01:00", "pageSize": 20}})");
    ASSERT_TRUE(p.config) << All(p);
    const PollSettings& poll = p.config->poll;
    EXPECT_TRUE(poll.enabled);
    EXPECT_EQ(poll.interval, 15s);
    EXPECT_EQ(poll.page_size, 20u);
    EXPECT_EQ(poll.query, kDefaultEncounterQuery);
    ASSERT_TRUE(poll.since);
    EXPECT_EQ(*poll.since, std::chrono::sys_days(std::chrono::year{2026} / 11 / 30) + 23h);

    Parsed now = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"}, "poll": {"since": "now", "enabled": false}})");
    ASSERT_TRUE(now.config) << All(now);
    EXPECT_FALSE(now.config->poll.enabled);
    EXPECT_FALSE(now.config->poll.since);
}

TEST(ServiceConfig, PollMistakesAreNamedByTheirPath) {
    Parsed p = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"},
      "poll": {"intervalMs": 10, "since": "yesterday", "pageSize": 0, "interval": 5,
               "query": "https://elsewhere.example/Encounter?_lastUpdated=gt{cursor}",
               "backoffInitialMs": 9000, "backoffMaxMs": 1000}})");
    EXPECT_FALSE(p.config);
    EXPECT_TRUE(HasIssue(p, "poll.intervalMs", "")) << All(p);
    EXPECT_TRUE(HasIssue(p, "poll.since", "now")) << All(p);
    EXPECT_TRUE(HasIssue(p, "poll.pageSize", "")) << All(p);
    EXPECT_TRUE(HasIssue(p, "poll.query", "relative to ehr.baseUrl")) << All(p);
    EXPECT_TRUE(HasIssue(p, "poll.backoffInitialMs", "backoffMaxMs")) << All(p);
    EXPECT_NE(All(p).find("interval"), std::string::npos);  // the unknown key

    Parsed no_cursor = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"},
      "poll": {"query": "Encounter?status=finished"}})");
    EXPECT_TRUE(HasIssue(no_cursor, "poll.query", "{cursor}")) << All(no_cursor);
}

TEST(ServiceConfig, AppointmentPollingIsReadAndItsMistakesNamedByTheirPath) {
    Parsed p = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"},
      "poll": {"appointments": {"horizonDays": 7, "rescreenEveryMs": 3600000}}})");
    ASSERT_TRUE(p.config) << All(p);
    const AppointmentPollSettings& a = p.config->poll.appointments;
    EXPECT_TRUE(a.enabled);
    EXPECT_EQ(a.horizon_days, 7);
    EXPECT_EQ(a.rescreen_every, std::chrono::hours(1));
    EXPECT_EQ(a.query, kDefaultAppointmentQuery);

    Parsed bad = Parse(R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
      "ehr": {"baseUrl": "https://ehr.example/fhir"},
      "poll": {"appointments": {"horizonDays": 0, "query": "Encounter?_lastUpdated=gt{cursor}",
               "rescreenQuery": "//elsewhere.example/Appointment?status=booked", "days": 3}}})");
    EXPECT_FALSE(bad.config);
    EXPECT_TRUE(HasIssue(bad, "poll.appointments.horizonDays", "")) << All(bad);
    EXPECT_TRUE(HasIssue(bad, "poll.appointments.query", "Appointment?")) << All(bad);
    EXPECT_TRUE(HasIssue(bad, "poll.appointments.rescreenQuery", "relative")) << All(bad);
    EXPECT_NE(All(bad).find("days"), std::string::npos);  // the unknown key
}

}  // namespace
}  // namespace microcare::adapter
