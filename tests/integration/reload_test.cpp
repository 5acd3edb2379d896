// Reloading the rule pack and the live configuration without a restart, on the real service:
// in process through POST /admin/reload, and on a spawned `microcare serve` through SIGHUP.
// What is checked is what an operator and the EHR see: /readyz, the answers, the resources
// written, the jobs' ends.
#include <gtest/gtest.h>

#include <fstream>

#include "adapter/file_io.hpp"
#include "adapter/service/service.hpp"
#include "adapter/store/job_store.hpp"
#include "fhir/json.hpp"
#include "serve_process.hpp"
#include "service_harness.hpp"

namespace microcare::testing {
namespace {

constexpr const char* kAdminToken = "integration-admin-token-0123456789";
constexpr const char* kMetricsToken = "integration-metrics-token-0123456789";

std::string Replaced(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
}

std::string Field(const std::string& body, std::initializer_list<std::string_view> path) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(body, issues);
    if (!doc) return "(not JSON: " + body + ")";
    fhir::Node node = doc->Root();
    for (std::string_view key : path) node = node[key];
    return node.IsString() ? std::string(node.String()) : "(missing)";
}

class ReloadTest : public ::testing::Test {
protected:
    void SetUp() override {
        ehr_ = std::make_unique<FakeEhr>();
        ehr_->Load(ReadSource("config/examples/absolute-isotretinoin.json"));
        dir_ = FreshDirectory("reload");
        shipped_ = ReadSource("config/rules/microneedling.json");
        pack_path_ = (dir_ / "pack.json").string();
        config_path_ = (dir_ / "microcare.json").string();
        std::ofstream(pack_path_) << shipped_;
        std::ofstream(config_path_) << R"({
          "server": {"listen": "127.0.0.1", "port": 0, "adminToken": ")"
                                    << kAdminToken << R"(", "metricsToken": ")" << kMetricsToken
                                    << R"(", "auth": {"bearerTokens": [")" << kToken << R"("]}},
          "store": {"path": ")" << (dir_ / "microcare.db").string()
                                    << R"("},
          "audit": {"path": ")" << (dir_ / "audit.log").string()
                                    << R"("},
          "worker": {"concurrency": 2, "leaseSeconds": 3, "backoffInitialMs": 20,
                     "backoffMaxMs": 200, "pollIntervalMs": 20, "maxAttempts": 5},
          "ehr": {"baseUrl": ")" << ehr_->BaseUrl()
                                    << R"(", "requestTimeoutMs": 5000},
          "rules": {"path": ")" << pack_path_
                                    << R"("},
          "log": {"level": "warning"}
        })";
    }
    void TearDown() override {
        if (service_) service_->Stop();
        service_.reset();
        ehr_->Stop();
        std::filesystem::remove_all(dir_);
    }

    void StartInProcess() {
        fhir::IssueList issues;
        auto config = adapter::LoadServiceConfig(config_path_, issues);
        ASSERT_TRUE(config) << (issues.empty() ? "" : issues.issues()[0].message);
        auto service = adapter::Service::Create(*config, config_path_);
        ASSERT_TRUE(service) << service.error().message();
        service_ = std::move(*service);
        service_->Start();
        root_ = "http://127.0.0.1:" + std::to_string(service_->port());
    }

    Reply AdminReload(const std::string& token) {
        std::vector<std::pair<std::string, std::string>> headers;
        if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
        return Send("POST", root_ + "/admin/reload", "", headers);
    }
    std::string PackInForce() {
        return Field(Send("GET", root_ + "/readyz", "", {}).body, {"rulePack", "version"});
    }

    bool JobsSettled(std::size_t expected) {
        adapter::JobFilter filter;
        filter.limit = 1000;
        auto jobs = service_->store().List(filter);
        if (!jobs || jobs->size() != expected) return false;
        for (const adapter::Job& job : *jobs) {
            if (job.state != adapter::JobState::kDone) return false;
        }
        return true;
    }

    std::unique_ptr<FakeEhr> ehr_;
    std::unique_ptr<adapter::Service> service_;
    std::filesystem::path dir_;
    std::string shipped_;
    std::string pack_path_;
    std::string config_path_;
    std::string root_;
};

TEST_F(ReloadTest, TheAdminEndpointTakesTheAdminTokenOnly) {
    StartInProcess();
    Reply none = AdminReload("");
    EXPECT_EQ(none.status, 401u);
    EXPECT_EQ(Field(none.body, {"resourceType"}), "OperationOutcome");
    Reply ehr = AdminReload(kToken);
    EXPECT_EQ(ehr.status, 403u) << "an EHR's token must not change the rules";
    EXPECT_EQ(Field(ehr.body, {"resourceType"}), "OperationOutcome");
    Reply metrics = AdminReload(kMetricsToken);
    EXPECT_EQ(metrics.status, 403u);
    Reply wrong = AdminReload("integration-admin-token-0123456780");
    EXPECT_EQ(wrong.status, 403u);
    Reply get = Send("GET", root_ + "/admin/reload", "",
                     {{"Authorization", std::string("Bearer ") + kAdminToken}});
    EXPECT_EQ(get.status, 405u);
    // And the admin token opens nothing else.
    Reply message = PostJson(root_ + "/fhir/$process-message",
                             MessageBundle("b-1", "h-1", "Encounter/enc-mn-20261120"), kAdminToken);
    EXPECT_EQ(message.status, 401u);
    Reply ok = AdminReload(kAdminToken);
    EXPECT_EQ(ok.status, 200u) << ok.body;
}

TEST_F(ReloadTest, AGoodPackIsInForceForNewJobsABrokenOneIsRefusedAndTheOldStays) {
    StartInProcess();
    ASSERT_EQ(PackInForce(), "1.0.0");

    std::ofstream(pack_path_) << Replaced(shipped_, R"("version": "1.0.0")",
                                          R"("version": "1.0.1")");
    Reply good = AdminReload(kAdminToken);
    ASSERT_EQ(good.status, 200u) << good.body;
    EXPECT_EQ(Field(good.body, {"outcome"}), "applied");
    EXPECT_EQ(Field(good.body, {"rulePack", "version"}), "1.0.1");
    const std::string sha = Field(good.body, {"rulePack", "sha256"});
    EXPECT_EQ(PackInForce(), "1.0.1");
    EXPECT_EQ(Field(Send("GET", root_ + "/readyz", "", {}).body, {"rulePack", "sha256"}), sha);

    // A job that starts now is assessed and written under the new pack.
    ASSERT_EQ(PostJson(root_ + "/fhir/$process-message",
                       MessageBundle("b-1", "h-1", "Encounter/enc-mn-20261120"))
                  .status,
              200u);
    ASSERT_TRUE(WaitFor([&] { return JobsSettled(1); }));
    const auto plans = ehr_->All("CarePlan");
    ASSERT_EQ(plans.size(), 1u);
    EXPECT_NE(plans[0].find("|1.0.1"), std::string::npos) << plans[0];
    const std::string trail = adapter::ReadFile((dir_ / "audit.log").string()).value_or("");
    EXPECT_NE(trail.find(R"("event":"decision")"), std::string::npos);
    EXPECT_NE(trail.find(sha), std::string::npos);

    // A broken pack: refused with its problems, by path; 1.0.1 stays; jobs are still done.
    std::string broken = Replaced(shipped_, R"("severity": "relative")", R"("severity": "maybe")");
    broken = Replaced(broken, R"("version": "1.0.0")", R"("version": "2.0.0")");
    std::ofstream(pack_path_) << broken;
    Reply bad = AdminReload(kAdminToken);
    EXPECT_EQ(bad.status, 422u);
    EXPECT_EQ(Field(bad.body, {"resourceType"}), "OperationOutcome");
    EXPECT_NE(bad.body.find("severity"), std::string::npos) << bad.body;
    EXPECT_NE(bad.body.find("expression"), std::string::npos) << bad.body;
    EXPECT_EQ(PackInForce(), "1.0.1");
    ASSERT_EQ(PostJson(root_ + "/fhir/$process-message",
                       MessageBundle("b-2", "h-2", "Encounter/enc-mn-20261120"))
                  .status,
              200u);
    ASSERT_TRUE(WaitFor([&] { return JobsSettled(2); }));
    const std::string metrics = Send("GET", root_ + "/metrics", "",
                                     {{"Authorization", std::string("Bearer ") + kMetricsToken}})
                                    .body;
    EXPECT_NE(metrics.find("microcare_reloads_applied_total 1\n"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("microcare_reloads_refused_total 1\n"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("version=\"1.0.1\""), std::string::npos) << metrics;
    const std::string after = adapter::ReadFile((dir_ / "audit.log").string()).value_or("");
    EXPECT_NE(after.find(R"("outcome":"refused")"), std::string::npos);
}

TEST_F(ReloadTest, ANewEhrTokenAppliesWithoutARestart) {
    StartInProcess();
    constexpr const char* kNewToken = "integration-new-ehr-token-0123456789";
    std::string config = adapter::ReadFile(config_path_).value_or("");
    std::ofstream(config_path_) << Replaced(config, kToken, kNewToken);
    Reply reload = AdminReload(kAdminToken);
    ASSERT_EQ(reload.status, 200u) << reload.body;
    EXPECT_NE(reload.body.find("server.auth.bearerTokens"), std::string::npos) << reload.body;
    const std::string bundle = MessageBundle("b-3", "h-3", "Encounter/enc-mn-20261120");
    EXPECT_EQ(PostJson(root_ + "/fhir/$process-message", bundle, kToken).status, 401u);
    EXPECT_EQ(PostJson(root_ + "/fhir/$process-message", bundle, kNewToken).status, 200u);
}

TEST_F(ReloadTest, SighupReloadsARunningServeProcess) {
    // The child's port is read from its "listening" line, an info line.
    const std::string config = adapter::ReadFile(config_path_).value_or("");
    std::ofstream(config_path_) << Replaced(config, R"("level": "warning")", R"("level": "info")");
    ServeProcess process(config_path_);
    ASSERT_NE(process.port(), 0);
    root_ = "http://127.0.0.1:" + std::to_string(process.port());
    ASSERT_EQ(PackInForce(), "1.0.0");

    std::ofstream(pack_path_) << Replaced(shipped_, R"("version": "1.0.0")",
                                          R"("version": "1.0.1")");
    process.Send(SIGHUP);
    EXPECT_TRUE(WaitFor([&] { return PackInForce() == "1.0.1"; }));

    // A broken pack on the next SIGHUP: refused (the trail says so), the process keeps serving
    // 1.0.1.
    std::ofstream(pack_path_) << "{ not a pack";
    process.Send(SIGHUP);
    const std::string trail_path = (dir_ / "audit.log").string();
    EXPECT_TRUE(WaitFor([&] {
        return adapter::ReadFile(trail_path).value_or("").find(R"("outcome":"refused")") !=
               std::string::npos;
    }));
    EXPECT_EQ(PackInForce(), "1.0.1");
    const std::string trail = adapter::ReadFile(trail_path).value_or("");
    EXPECT_NE(trail.find(R"("trigger":"SIGHUP")"), std::string::npos);
}

}  // namespace
}  // namespace microcare::testing
