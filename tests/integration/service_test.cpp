// MicroCare as the EHR drives it, in process: triggers in over HTTP, jobs through the durable
// store, the record read from and the result written to a fake EHR that fails on demand. Each
// test checks what the EHR ends up holding (exactly one CarePlan per encounter) and how the job
// ended.
#include "adapter/service/service.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "adapter/audit/audit_file_set.hpp"
#include "adapter/audit/audit_key.hpp"
#include "adapter/audit/audit_verify.hpp"
#include "adapter/rule_pack_file.hpp"
#include "adapter/server/inbound.hpp"
#include "adapter/store/job_store.hpp"
#include "fhir/json.hpp"
#include "service_harness.hpp"
#include "tests/unit/adapter/audit/full_disk.hpp"

namespace microcare::testing {
namespace {

constexpr const char* kEncounter = "Encounter/enc-mn-20261120";
// Both go to the base: the record is read with a batch, the result written with a transaction.
const std::string kBatch = "\"batch\"";
const std::string kTransaction = "\"transaction\"";

class ServiceTest : public ::testing::Test {
protected:
    void SetUp() override {
        ehr_ = std::make_unique<FakeEhr>();
        ehr_->Load(ReadSource("config/examples/absolute-isotretinoin.json"));
        dir_ = FreshDirectory("service");
    }
    void TearDown() override {
        if (service_) service_->Stop();
        service_.reset();
        ehr_->Stop();
        std::filesystem::remove_all(dir_);
    }

    void Start(const std::function<void(adapter::ServiceConfig&)>& adjust = {},
               adapter::ServiceSeams seams = {}) {
        adapter::ServiceConfig config = TestConfig(ehr_->BaseUrl(), dir_);
        if (adjust) adjust(config);
        audit_ = config.audit;
        auto service = adapter::Service::Create(config, {}, std::move(seams));
        ASSERT_TRUE(service) << service.error().message();
        service_ = std::move(*service);
        service_->Start();
        base_ = "http://127.0.0.1:" + std::to_string(service_->port()) + "/fhir";
    }

    std::vector<adapter::Job> Jobs(std::optional<adapter::JobState> state = std::nullopt) {
        adapter::JobFilter filter;
        filter.state = state;
        filter.limit = 1000;
        auto jobs = service_->store().List(filter);
        return jobs ? *jobs : std::vector<adapter::Job>{};
    }

    bool AllJobsSettled() {
        for (const adapter::Job& job : Jobs()) {
            if (job.state == adapter::JobState::kQueued ||
                job.state == adapter::JobState::kRunning) {
                return false;
            }
        }
        return !Jobs().empty();
    }

    Reply Message(const std::string& bundle_id, const std::string& header_id,
                  const std::string& encounter = kEncounter) {
        return PostJson(base_ + "/$process-message",
                        MessageBundle(bundle_id, header_id, encounter));
    }

    std::unique_ptr<FakeEhr> ehr_;
    std::unique_ptr<adapter::Service> service_;
    std::filesystem::path dir_;
    std::string base_;
    adapter::AuditSettings audit_;
};

// The body as JSON; an empty document (every member missing) if it is not JSON.
fhir::JsonDocument Parsed(const std::string& body) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(body, issues);
    EXPECT_TRUE(doc.has_value()) << body;
    return doc ? std::move(*doc) : fhir::JsonDocument();
}

std::string ResponseCode(const std::string& body) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(body, issues);
    if (!doc) return "(not JSON)";
    return std::string(doc->Root()["entry"][0]["resource"]["response"]["code"].String());
}

TEST_F(ServiceTest, AMessageBecomesOneCarePlanWithItsIssuesAndTask) {
    Start();
    Reply reply = Message("msg-1", "hdr-1");
    ASSERT_EQ(reply.status, 200u) << reply.error << reply.body;
    EXPECT_EQ(ResponseCode(reply.body), "ok");
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    EXPECT_EQ(Jobs(adapter::JobState::kDone).size(), 1u);
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    EXPECT_EQ(ehr_->Count("DetectedIssue"), 1u);  // A8, current isotretinoin
    EXPECT_EQ(ehr_->Count("Task"), 1u);
}

// Issue 8: with the disk under the audit trail full, triggers were acknowledged and processed
// unaudited. A trigger's record is committed with its job (issue 6: one sync before the answer,
// not two), so the first trigger after the disk fills is acknowledged with its record safe in
// the store. The trail cannot take it: /readyz says not ready, later triggers are refused with a
// 503 the EHR retries and make no job, nothing reaches the EHR while the decision cannot be
// recorded, and once space returns the trail heals by itself, takes the record that waited in
// the store, and the triggers end in exactly one CarePlan.
TEST_F(ServiceTest, NothingIsAcknowledgedOrWrittenUnauditedAndTheTrailHealsWhenSpaceReturns) {
    auto full = std::make_shared<std::atomic<bool>>(false);
    Start({}, adapter::ServiceSeams{adapter::testing::FullDiskOpener(full)});
    const std::string root = base_.substr(0, base_.size() - 5);
    ASSERT_EQ(Send("GET", root + "/readyz", "", {}).status, 200u);

    *full = true;
    Reply recorded = Message("msg-full", "hdr-full");
    EXPECT_EQ(recorded.status, 200u) << recorded.body;
    ASSERT_TRUE(WaitFor([&] { return Send("GET", root + "/readyz", "", {}).status == 503u; }));
    Reply refused = Message("msg-full-2", "hdr-full-2");
    EXPECT_EQ(refused.status, 503u) << refused.body;
    EXPECT_NE(refused.body.find("\"transient\""), std::string::npos) << refused.body;
    bool retry_after = false;
    for (const auto& [name, value] : refused.headers) {
        if (name == "Retry-After" || name == "retry-after") retry_after = !value.empty();
    }
    EXPECT_TRUE(retry_after);
    EXPECT_EQ(Jobs().size(), 1u);  // the refused trigger made none
    // The journaled job is attempted, but its decision cannot be recorded: nothing is written.
    ASSERT_TRUE(WaitFor([&] {
        auto jobs = Jobs();
        return !jobs.empty() && jobs.front().attempts >= 2;
    }));
    for (const ReceivedRequest& request : ehr_->Requests()) {
        EXPECT_EQ(request.body.find(kTransaction), std::string::npos) << "written unaudited";
    }
    EXPECT_EQ(ehr_->Count("CarePlan"), 0u);

    *full = false;
    ASSERT_TRUE(WaitFor([&] { return Send("GET", root + "/readyz", "", {}).status == 200u; }));
    EXPECT_EQ(Message("msg-full", "hdr-full").status, 200u);
    EXPECT_EQ(Message("msg-full-2", "hdr-full-2").status, 200u);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    EXPECT_EQ(Jobs(adapter::JobState::kDone).size(), 2u);
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);

    service_->Stop();
    const adapter::AuditReport report =
        adapter::VerifyTrail({audit_.path, {}, adapter::CheckpointPathOf(audit_), {}, {}});
    EXPECT_TRUE(report.intact());
    std::ifstream in(audit_.path);
    const std::string trail((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(trail.find("\"event\":\"audit-resumed\""), std::string::npos);
    EXPECT_NE(trail.find("\"event\":\"trigger-repeated\""), std::string::npos);
    // The first trigger's record, which waited in the store while the disk was full.
    bool first_recorded = false;
    std::istringstream lines(trail);
    for (std::string line; std::getline(lines, line);) {
        first_recorded =
            first_recorded || (line.find("\"event\":\"trigger\"") != std::string::npos &&
                               line.find("\"message\":\"msg-full\"") != std::string::npos);
    }
    EXPECT_TRUE(first_recorded) << trail;
}

// Issue 8: the trail named no caller and left out refused requests. Now each trigger names the
// client (a token's fingerprint, never the token), every refusal of a credential is recorded
// (sampled under a flood), and the service's start and stop with its pack.
TEST_F(ServiceTest, TheTrailNamesWhoCalledWhoWasRefusedAndTheServicesStartAndStop) {
    Start();
    const std::string wrong = "not-a-configured-token-0123456789";
    Reply refused = PostJson(base_ + "/$process-message",
                             MessageBundle("msg-who", "hdr-who", kEncounter), wrong);
    EXPECT_EQ(refused.status, 401u);
    ASSERT_EQ(Message("msg-who", "hdr-who").status, 200u);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    service_->Stop();

    std::ifstream in(audit_.path);
    const std::string trail((std::istreambuf_iterator<char>(in)), {});
    const std::string fingerprint = adapter::Sha256Hex(kToken).substr(0, 16);
    EXPECT_NE(trail.find("\"event\":\"service-start\""), std::string::npos) << trail;
    EXPECT_NE(trail.find("\"packSha256\""), std::string::npos);
    EXPECT_NE(trail.find("\"event\":\"request-refused\",\"status\":\"401\""), std::string::npos)
        << trail;
    EXPECT_NE(trail.find("\"client\":\"token sha256:" + adapter::Sha256Hex(wrong).substr(0, 16)),
              std::string::npos);
    EXPECT_NE(trail.find("\"channel\":\"$process-message\",\"client\":\"token sha256:" +
                         fingerprint + "\""),
              std::string::npos)
        << trail;
    EXPECT_NE(trail.find("\"event\":\"service-stop\""), std::string::npos);
    // The decision names the patient and the exact version of each piece of evidence.
    const std::size_t decision = trail.find("\"event\":\"decision\"");
    ASSERT_NE(decision, std::string::npos) << trail;
    const std::string line = trail.substr(decision, trail.find('\n', decision) - decision);
    EXPECT_NE(line.find("\"patient\":\"Patient/"), std::string::npos) << line;
    EXPECT_NE(line.find("\"findings\":\"A8:high@MedicationRequest/mr-isotretinoin/_history/1\""),
              std::string::npos)
        << line;
    EXPECT_NE(line.find("/_history/1"), std::string::npos) << line;
    // Never a credential.
    EXPECT_EQ(trail.find(kToken), std::string::npos);
    EXPECT_EQ(trail.find(wrong), std::string::npos);
}

TEST_F(ServiceTest, AReSentMessageGetsTheSameAnswerAndNoSecondJob) {
    Start();
    Reply first = Message("msg-2", "hdr-2");
    Reply again = Message("msg-2", "hdr-2");
    ASSERT_EQ(first.status, 200u);
    ASSERT_EQ(again.status, 200u);
    EXPECT_EQ(first.body, again.body);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    EXPECT_EQ(Jobs().size(), 1u);
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    // The same Bundle id with another MessageHeader id is a different message reusing an id.
    Reply reused = Message("msg-2", "hdr-other");
    EXPECT_EQ(reused.status, 409u) << reused.body;
    EXPECT_NE(reused.body.find("OperationOutcome"), std::string::npos);
}

TEST_F(ServiceTest, ReplayingADoneJobWritesNothingNew) {
    Start();
    ASSERT_EQ(Message("msg-3", "hdr-3").status, 200u);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    const auto done = Jobs(adapter::JobState::kDone);
    ASSERT_EQ(done.size(), 1u);
    auto now = std::chrono::floor<std::chrono::milliseconds>(adapter::Clock::now());
    ASSERT_TRUE(service_->store().Retry(done[0].id, now));
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    EXPECT_EQ(ehr_->Count("DetectedIssue"), 1u);
    EXPECT_EQ(ehr_->Count("Task"), 1u);
}

struct FaultCase {
    const char* name;
    const char* method;
    const char* path;
    Fault fault;
    std::size_t times;
};

// gtest names the case instead of dumping its bytes.
void PrintTo(const FaultCase& c, std::ostream* os) { *os << c.name; }

class ServiceFaultTest : public ServiceTest, public ::testing::WithParamInterface<FaultCase> {};

TEST_P(ServiceFaultTest, TransientFaultsEndInExactlyOneCarePlan) {
    const FaultCase& c = GetParam();
    ehr_->InjectFault(c.method, c.path, c.fault, c.times);
    Start();
    ASSERT_EQ(Message(std::string("msg-") + c.name, std::string("hdr-") + c.name).status, 200u);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    auto done = Jobs(adapter::JobState::kDone);
    ASSERT_EQ(done.size(), 1u) << "job not done; last error: "
                               << (Jobs().empty() ? "" : Jobs()[0].last_error);
    EXPECT_GE(done[0].attempts, 2) << "the fault was not hit";
    EXPECT_EQ(ehr_->PendingFaults(), 0u);
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    EXPECT_EQ(ehr_->Count("DetectedIssue"), 1u);
}

INSTANTIATE_TEST_SUITE_P(
    Faults, ServiceFaultTest,
    ::testing::Values(
        FaultCase{"server-error", "POST", "", Fault::ServerError().OnlyIfBody(kTransaction), 2},
        FaultCase{"throttled", "POST", "", Fault::TooManyRequests(1).OnlyIfBody(kTransaction), 1},
        FaultCase{"reset-read", "GET", "Encounter/enc-mn-20261120", Fault::Reset(), 1},
        FaultCase{"reset-write", "POST", "", Fault::Reset().OnlyIfBody(kTransaction), 1},
        FaultCase{"stall-batch", "POST", "", Fault::Stall().OnlyIfBody(kBatch), 1},
        FaultCase{"committed-then-reset", "POST", "",
                  Fault::CommitThenReset().OnlyIfBody(kTransaction), 1},
        FaultCase{"unavailable-batch", "POST", "", Fault::Unavailable().OnlyIfBody(kBatch), 2},
        FaultCase{"stall-read", "GET", "Encounter/enc-mn-20261120", Fault::Stall(), 1},
        FaultCase{"check-server-error", "GET", "CarePlan?identifier", Fault::ServerError(), 1}),
    [](const ::testing::TestParamInfo<FaultCase>& info) {
        std::string name = info.param.name;
        for (char& ch : name) ch = ch == '-' ? '_' : ch;
        return name;
    });

TEST_F(ServiceTest, RetryAfterIsHonoured) {
    ehr_->InjectFault("POST", "", Fault::TooManyRequests(1).OnlyIfBody(kTransaction), 1);
    Start();
    ASSERT_EQ(Message("msg-ra", "hdr-ra").status, 200u);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    auto requests = ehr_->Requests();
    std::size_t transactions = 0;
    for (const ReceivedRequest& r : requests) {
        transactions +=
            r.kind == RequestKind::kTransaction && r.body.find(kTransaction) != std::string::npos;
    }
    EXPECT_EQ(transactions, 2u);
    auto done = Jobs(adapter::JobState::kDone);
    ASSERT_EQ(done.size(), 1u);
    // The retry came no sooner than the EHR asked for: a second after the first attempt.
    EXPECT_GE(done[0].updated_at - done[0].created_at, std::chrono::milliseconds(1000));
}

TEST_F(ServiceTest, AValidationRefusalDeadLettersTheJobWithTheEhrOutcome) {
    ehr_->InjectFault("POST", "",
                      Fault::Outcome(422, "invariant", "cpl-3 failed").OnlyIfBody(kTransaction), 1);
    Start();
    ASSERT_EQ(Message("msg-422", "hdr-422").status, 200u);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    auto dead = Jobs(adapter::JobState::kDead);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].attempts, 1);  // a 4xx is not retried
    EXPECT_NE(dead[0].last_error.find("422"), std::string::npos) << dead[0].last_error;
    EXPECT_NE(dead[0].outcome.find("cpl-3 failed"), std::string::npos) << dead[0].outcome;
    EXPECT_EQ(ehr_->Count("CarePlan"), 0u);
}

TEST_F(ServiceTest, AnEhrWithoutBatchesIsReadWithSeparateRequests) {
    ehr_->InjectFault("POST", "",
                      Fault::Outcome(405, "not-supported", "no batch here").OnlyIfBody(kBatch), 10);
    Start();
    ASSERT_EQ(Message("msg-nobatch", "hdr-nobatch").status, 200u);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    EXPECT_EQ(Jobs(adapter::JobState::kDone).size(), 1u);
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    EXPECT_EQ(ehr_->Count("DetectedIssue"), 1u);  // the same record was read
    EXPECT_GE(ehr_->RequestCount("GET", RequestKind::kSearch, "Condition"), 1u);
}

TEST_F(ServiceTest, PersistentFailureIsDeadLetteredAfterMaxAttempts) {
    ehr_->InjectFault("GET", "Encounter", Fault::ServerError(), 100);
    Start([](adapter::ServiceConfig& c) { c.worker.max_attempts = 3; });
    ASSERT_EQ(Message("msg-500", "hdr-500").status, 200u);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    auto dead = Jobs(adapter::JobState::kDead);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_EQ(dead[0].attempts, 3);
    EXPECT_NE(dead[0].last_error.find("gave up after 3 attempts"), std::string::npos)
        << dead[0].last_error;
}

TEST_F(ServiceTest, AnEncounterUnknownToTheEhrIsDeadLettered) {
    Start();
    ASSERT_EQ(Message("msg-404", "hdr-404", "Encounter/nope").status, 200u);
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    auto dead = Jobs(adapter::JobState::kDead);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_NE(dead[0].last_error.find("404"), std::string::npos) << dead[0].last_error;
}

TEST_F(ServiceTest, JobsOfOneEncounterNeverRunAtOnceEvenOnARacyServer) {
    ehr_->SetRaceMode(true, std::chrono::milliseconds(100));
    Start();
    // Two triggers for the same encounter at once: a message and an R4 notification.
    std::thread a([&] { Message("msg-race", "hdr-race"); });
    std::thread b([&] {
        PostJson(base_ + "/notifications", ehr_->Get("Encounter", "enc-mn-20261120").value_or(""));
    });
    a.join();
    b.join();
    ASSERT_TRUE(WaitFor([&] { return Jobs().size() == 2 && AllJobsSettled(); }));
    EXPECT_EQ(Jobs(adapter::JobState::kDone).size(), 2u);
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    EXPECT_EQ(ehr_->MaxConcurrentTransactions(), 1u);
}

// ---- bad input -------------------------------------------------------------------------

struct BadInput {
    const char* name;
    const char* method;
    const char* path;
    std::string body;
    std::string content_type;
    std::string token;
    unsigned status;
};

void PrintTo(const BadInput& c, std::ostream* os) { *os << c.name; }

class ServiceBadInputTest : public ServiceTest, public ::testing::WithParamInterface<BadInput> {};

TEST_P(ServiceBadInputTest, IsRefusedWithAnOperationOutcomeAndNoJob) {
    const BadInput& c = GetParam();
    Start();
    std::vector<std::pair<std::string, std::string>> headers;
    if (!c.content_type.empty()) headers.emplace_back("Content-Type", c.content_type);
    if (!c.token.empty()) headers.emplace_back("Authorization", "Bearer " + c.token);
    Reply reply = Send(c.method, base_ + c.path, c.body, headers);
    EXPECT_EQ(reply.status, c.status) << reply.error << reply.body;
    EXPECT_NE(reply.body.find("\"resourceType\":\"OperationOutcome\""), std::string::npos)
        << reply.body;
    EXPECT_TRUE(Jobs().empty());
}

const std::string kJson = "application/fhir+json";

INSTANTIATE_TEST_SUITE_P(
    Refusals, ServiceBadInputTest,
    ::testing::Values(
        BadInput{"malformed_json", "POST", "/$process-message", "{\"resourceType\": \"Bundle\",",
                 kJson, kToken, 400},
        BadInput{"wrong_resource_type", "POST", "/$process-message",
                 R"({"resourceType":"Patient","id":"p"})", kJson, kToken, 422},
        BadInput{
            "missing_message_header", "POST", "/$process-message",
            R"({"resourceType":"Bundle","id":"b","type":"message","entry":[{"resource":{"resourceType":"Encounter","id":"e"}}]})",
            kJson, kToken, 422},
        BadInput{
            "missing_focus", "POST", "/$process-message",
            R"({"resourceType":"Bundle","id":"b","type":"message","entry":[{"resource":{"resourceType":"MessageHeader","id":"h","eventUri":"x"}}]})",
            kJson, kToken, 422},
        BadInput{"oversized_body", "POST", "/$process-message", std::string(300 * 1024, ' '), kJson,
                 kToken, 413},
        BadInput{"missing_token", "POST", "/$process-message",
                 MessageBundle("b", "h", "Encounter/e"), kJson, "", 401},
        BadInput{"wrong_token", "POST", "/$process-message", MessageBundle("b", "h", "Encounter/e"),
                 kJson, "not-the-right-token-at-all", 401},
        BadInput{"wrong_content_type", "POST", "/$process-message",
                 MessageBundle("b", "h", "Encounter/e"), "text/plain", kToken, 415},
        BadInput{"wrong_method", "GET", "/$process-message", "", "", kToken, 405},
        BadInput{"unknown_path", "GET", "/Patient/1", "", "", kToken, 404},
        BadInput{"notification_malformed", "POST", "/notifications", "[1,", kJson, kToken, 400},
        BadInput{"notification_wrong_type", "POST", "/notifications",
                 R"({"resourceType":"Patient","id":"p"})", kJson, kToken, 422},
        BadInput{"notification_missing_token", "POST", "/notifications",
                 R"({"resourceType":"Encounter","id":"e"})", kJson, "", 401},
        BadInput{"notification_empty_unnamed", "POST", "/notifications", "", "", kToken, 422}),
    [](const ::testing::TestParamInfo<BadInput>& info) { return std::string(info.param.name); });

TEST_F(ServiceTest, MetadataAndHealthEndpoints) {
    Start();
    Reply metadata = Send("GET", base_ + "/metadata", "", {});
    EXPECT_EQ(metadata.status, 200u);
    EXPECT_NE(metadata.body.find("\"reliableCache\""), std::string::npos);
    const std::string root = "http://127.0.0.1:" + std::to_string(service_->port());
    EXPECT_EQ(Send("GET", root + "/healthz", "", {}).status, 200u);
    EXPECT_EQ(Send("GET", root + "/readyz", "", {}).status, 200u);
    // The counts are not for anyone who asks: a token opens them (http_edge_test.cpp).
    EXPECT_EQ(Send("GET", root + "/metrics", "", {}).status, 401u);
    Reply metrics =
        Send("GET", root + "/metrics", "", {{"Authorization", std::string("Bearer ") + kToken}});
    EXPECT_EQ(metrics.status, 200u);
    EXPECT_NE(metrics.body.find("microcare_jobs_queued"), std::string::npos);
}

// Which pack is in force shows on /readyz, /metrics and /metadata, with the hash the loader
// computed for the file the service was started with.
TEST_F(ServiceTest, RulePackIdentityIsShown) {
    Start();
    fhir::IssueList issues;
    auto pack = adapter::LoadRulePackFile(
        std::string(MICROCARE_SOURCE_DIR) + "/config/rules/microneedling.json", issues);
    ASSERT_TRUE(pack.has_value());
    ASSERT_EQ(pack->sha256.size(), 64u);
    const std::string root = "http://127.0.0.1:" + std::to_string(service_->port());

    Reply ready = Send("GET", root + "/readyz", "", {});
    EXPECT_EQ(ready.status, 200u);
    fhir::JsonDocument ready_json = Parsed(ready.body);
    EXPECT_EQ(ready_json.Root()["status"].String(), "ready");
    EXPECT_EQ(ready_json.Root()["rulePack"]["id"].String(), pack->id);
    EXPECT_EQ(ready_json.Root()["rulePack"]["version"].String(), pack->version);
    EXPECT_EQ(ready_json.Root()["rulePack"]["sha256"].String(), pack->sha256);

    Reply metrics =
        Send("GET", root + "/metrics", "", {{"Authorization", std::string("Bearer ") + kToken}});
    EXPECT_EQ(metrics.status, 200u);
    const std::string info = "\nmicrocare_rule_pack_info{id=\"" + pack->id + "\",version=\"" +
                             pack->version + "\",sha256=\"" + pack->sha256 + "\"} 1\n";
    EXPECT_NE(metrics.body.find(info), std::string::npos) << metrics.body;

    Reply metadata = Send("GET", base_ + "/metadata", "", {});
    EXPECT_EQ(metadata.status, 200u);
    fhir::JsonDocument capability = Parsed(metadata.body);
    fhir::Node extension = capability.Root()["extension"][0];
    EXPECT_EQ(extension["url"].String(), adapter::kRulePackExtension);
    EXPECT_EQ(extension["extension"][0]["url"].String(), "id");
    EXPECT_EQ(extension["extension"][0]["valueString"].String(), pack->id);
    EXPECT_EQ(extension["extension"][1]["url"].String(), "version");
    EXPECT_EQ(extension["extension"][1]["valueString"].String(), pack->version);
    EXPECT_EQ(extension["extension"][2]["url"].String(), "sha256");
    EXPECT_EQ(extension["extension"][2]["valueString"].String(), pack->sha256);
    EXPECT_NE(capability.Root()["implementation"]["description"].String().find(pack->sha256),
              std::string::npos);
}

// ---- subscriptions ---------------------------------------------------------------------

std::string Notification(const std::string& type, std::vector<std::pair<int, std::string>> events,
                         int since) {
    std::string status =
        R"({"resourceType":"SubscriptionStatus","status":"active","type":")" + type +
        R"(","eventsSinceSubscriptionStart":")" + std::to_string(since) +
        R"(","subscription":{"reference":"Subscription/sub-1"},"topic":"https://microcare.example/topic","notificationEvent":[)";
    for (std::size_t i = 0; i < events.size(); ++i) {
        status +=
            (i ? "," : "") + std::string(R"({"eventNumber":")") + std::to_string(events[i].first) +
            "\"" +
            (events[i].second.empty() ? ""
                                      : R"(,"focus":{"reference":")" + events[i].second + "\"}") +
            "}";
    }
    status += "]}";
    return R"({"resourceType":"Bundle","type":"history","entry":[{"fullUrl":"urn:uuid:2f1e0d9c-8b7a-4654-8321-0fedcba98765","resource":)" +
           status + "}]}";
}

TEST_F(ServiceTest, SubscriptionEventsAreTrackedDuplicatesIgnoredAndGapsRecovered) {
    ehr_->Put(MicroneedlingEncounter("enc-s2", "pat-chloe-besson", "2026-11-21T10:00:00+01:00"));
    Start();
    Reply handshake = PostJson(base_ + "/notifications", Notification("handshake", {}, 0));
    EXPECT_EQ(handshake.status, 200u) << handshake.body;
    // The trail opens with its own record and the service's start; the handshake comes next.
    std::ifstream audit(dir_ / "audit.log");
    std::string first_record;
    for (int line = 0; line < 3; ++line) std::getline(audit, first_record);
    EXPECT_NE(first_record.find("\"event\":\"subscription-status\",\"subscription\":\"Subscription/"
                                "sub-1\",\"client\":\"token sha256:"),
              std::string::npos)
        << first_record;
    EXPECT_NE(first_record.find("\"type\":\"handshake\""), std::string::npos) << first_record;
    Reply first =
        PostJson(base_ + "/notifications",
                 Notification("event-notification", {{1, kEncounter}, {2, "Encounter/enc-s2"}}, 2));
    ASSERT_EQ(first.status, 200u) << first.body;
    EXPECT_NE(first.body.find("OperationOutcome"), std::string::npos);
    // Event 2 again: a duplicate, no job.
    PostJson(base_ + "/notifications",
             Notification("event-notification", {{2, "Encounter/enc-s2"}}, 2));
    // Event 5: events 3 and 4 were never delivered.
    PostJson(base_ + "/notifications", Notification("event-notification", {{5, kEncounter}}, 5));
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    std::size_t assess = 0;
    std::size_t recover = 0;
    for (const adapter::Job& job : Jobs()) {
        assess += job.kind == "assess";
        recover += job.kind == "recover";
    }
    EXPECT_EQ(assess, 3u);   // events 1, 2, 5
    EXPECT_EQ(recover, 1u);  // events 3-4
    // The fake EHR has no $events: the gap is dead-lettered with a reason an admin can act on.
    auto dead = Jobs(adapter::JobState::kDead);
    ASSERT_EQ(dead.size(), 1u);
    EXPECT_NE(dead[0].last_error.find("3-4"), std::string::npos) << dead[0].last_error;
    EXPECT_EQ(ehr_->Count("CarePlan"), 2u);  // one per encounter
}

TEST_F(ServiceTest, R4NotificationWithAnEmptyBodyNamesTheEncounterInThePath) {
    Start();
    Reply reply = Send("POST", base_ + "/notifications/" + std::string(kEncounter), "",
                       {{"Authorization", std::string("Bearer ") + kToken}});
    ASSERT_EQ(reply.status, 200u) << reply.body;
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled(); }));
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
}

TEST_F(ServiceTest, AsyncMessagesAreAcknowledgedAtOnceAndAnsweredLater) {
    FakeEhr callback;  // the sender's messaging endpoint: records what it gets and answers 200
    Start([&](adapter::ServiceConfig& config) {
        config.server.allowed_response_urls = {callback.BaseUrl() + "/messaging"};
    });
    callback.InjectFault(
        "POST", "messaging",
        Fault::Status(
            200,
            R"({"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational"}]})"),
        1);
    const std::string url =
        base_ + "/$process-message?async=true&response-url=" + callback.BaseUrl() + "/messaging";
    Reply reply = PostJson(url, MessageBundle("msg-async", "hdr-async", kEncounter));
    EXPECT_EQ(reply.status, 202u) << reply.body;
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled() && Jobs().size() == 2; }));
    EXPECT_EQ(Jobs(adapter::JobState::kDone).size(), 2u);  // the assessment and the delivery
    bool delivered = false;
    for (const ReceivedRequest& r : callback.Requests()) {
        delivered =
            delivered || (r.method == "POST" && r.body.find("\"hdr-async\"") != std::string::npos);
    }
    EXPECT_TRUE(delivered);
    callback.Stop();
}

// Issue 7, item 2: a response-url chose where MicroCare POSTs, credentials included.
TEST_F(ServiceTest, ResponseUrlsTheConfigurationDoesNotAllowAreRefusedAndMakeNoJob) {
    Start([&](adapter::ServiceConfig& config) {
        config.server.allowed_response_urls = {ehr_->BaseUrl() + "/$process-message"};
    });
    for (const std::string& target : std::vector<std::string>{
             "https://evil.example/collect", ehr_->BaseUrl() + "/../admin/reset",
             ehr_->BaseUrl() + "/Patient", "file:///etc/passwd"}) {
        Reply reply = PostJson(base_ + "/$process-message?async=true&response-url=" + target,
                               MessageBundle("msg-evil", "hdr-evil", kEncounter));
        EXPECT_TRUE(reply.status == 422u) << target << ": " << reply.status << " " << reply.body;
        EXPECT_NE(reply.body.find("\"response-url\""), std::string::npos) << reply.body;
    }
    EXPECT_TRUE(Jobs().empty());
    EXPECT_TRUE(ehr_->Requests().empty());
}

// Issue 7, item 2: a 4xx from the response URL dead-lettered a job whose CarePlan was written.
TEST_F(ServiceTest, AFailedResponseDeliveryLeavesTheAssessmentDone) {
    FakeEhr callback;
    callback.InjectFault("POST", "messaging", Fault::Status(404, "{}"), 100);
    Start([&](adapter::ServiceConfig& config) {
        config.server.allowed_response_urls = {callback.BaseUrl() + "/messaging"};
    });
    Reply reply = PostJson(
        base_ + "/$process-message?async=true&response-url=" + callback.BaseUrl() + "/messaging",
        MessageBundle("msg-async-404", "hdr-async-404", kEncounter));
    ASSERT_EQ(reply.status, 202u) << reply.body;
    ASSERT_TRUE(WaitFor([&] { return AllJobsSettled() && Jobs().size() == 2; }));
    std::size_t assessed = 0;
    std::size_t undelivered = 0;
    for (const adapter::Job& job : Jobs()) {
        if (job.kind == "assess" && job.state == adapter::JobState::kDone) ++assessed;
        if (job.kind == "respond" && job.state == adapter::JobState::kDead) ++undelivered;
    }
    EXPECT_EQ(assessed, 1u);
    EXPECT_EQ(undelivered, 1u);
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    callback.Stop();
}

}  // namespace
}  // namespace microcare::testing
