// `microcare config check --connect` against the in-process fake EHR: it passes only when the
// EHR answers as `serve` needs it (TLS verified with the configured CA, a SMART token granted,
// [base]/metadata a FHIR R4 CapabilityStatement), and otherwise names the setting to fix, exit 2.
#include <gtest/gtest.h>

#include <boost/asio/ssl/context.hpp>
#include <fstream>
#include <sstream>

#include "adapter/admin_commands.hpp"
#include "service_harness.hpp"
#include "tests/unit/adapter/client/test_pki.hpp"

namespace microcare::testing {
namespace {

namespace ssl = boost::asio::ssl;

class ConfigConnectTest : public ::testing::Test {
protected:
    ConfigConnectTest() : dir_(FreshDirectory("config-connect")) {
        Write("smart.pem", adapter::test_support::GenerateEcKeyPem());
    }
    ~ConfigConnectTest() override {
        if (ehr_) ehr_->Stop();
        std::filesystem::remove_all(dir_);
    }

    void Write(const std::string& name, const std::string& text) {
        std::ofstream(dir_ / name) << text;
    }

    void StartEhr(bool tls) {
        FakeEhrOptions options;
        if (tls) {
            tls_ = std::make_unique<ssl::context>(ssl::context::tls_server);
            const auto pki = adapter::test_support::MakeCertificates("IP:127.0.0.1,DNS:localhost");
            adapter::test_support::UseServerCertificate(tls_->native_handle(), pki);
            Write("ehr-ca.pem", pki.ca_pem);
            Write("other-ca.pem", adapter::test_support::MakeCertificates("IP:127.0.0.1").ca_pem);
            options.tls = tls_.get();
        }
        ehr_ = std::make_unique<FakeEhr>(options);
    }

    // `ehr` holds the members of the `ehr` section besides baseUrl.
    int Check(const std::string& base_url, const std::string& ehr = "") {
        const auto path = (dir_ / "microcare.json").string();
        std::ofstream(path, std::ios::trunc) << R"({"server": {"auth": {"allowAnonymous": true}},
            "ehr": {)" << ehr << R"("baseUrl": ")"
                                             << base_url << R"(", "connectTimeoutMs": 2000,
                    "requestTimeoutMs": 5000},
            "store": {"path": "./microcare.db"}, "audit": {"path": "./audit.log"},
            "rules": {"path": ")" MICROCARE_SOURCE_DIR R"(/config/rules/microneedling.json"}})";
        std::ostringstream out;
        std::ostringstream err;
        const int code = adapter::RunConfigCheck(path, out, err, true);
        out_ = out.str();
        err_ = err.str();
        return code;
    }

    static std::string Smart(const std::string& token_endpoint) {
        return R"("auth": {"type": "smart-backend", "clientId": "microcare", "keyId": "k1",
                  "algorithm": "ES384", "privateKeyFile": "./smart.pem", "tokenEndpoint": ")" +
               token_endpoint + R"("},)";
    }

    std::filesystem::path dir_;
    std::unique_ptr<ssl::context> tls_;
    std::unique_ptr<FakeEhr> ehr_;
    std::string out_;
    std::string err_;
};

TEST_F(ConfigConnectTest, AnEhrThatAnswersAsServeNeedsPasses) {
    StartEhr(false);
    EXPECT_EQ(Check(ehr_->BaseUrl()), 0) << err_;
    EXPECT_NE(out_.find("answered: plain HTTP (no TLS), metadata is a FHIR R4 CapabilityStatement"),
              std::string::npos)
        << out_;
    EXPECT_EQ(ehr_->RequestCount("GET", RequestKind::kMetadata), 1u);
}

TEST_F(ConfigConnectTest, AnUnreachableEhrNamesBaseUrl) {
    StartEhr(false);
    const std::string base = ehr_->BaseUrl();
    ehr_->Stop();  // nothing listens on its port any more
    EXPECT_EQ(Check(base), 2);
    EXPECT_NE(err_.find("error: ehr.baseUrl: cannot connect to " + base), std::string::npos)
        << err_;
}

TEST_F(ConfigConnectTest, TlsVerifiedWithTheConfiguredCaPasses) {
    StartEhr(true);
    EXPECT_EQ(Check(ehr_->BaseUrl(), R"("caFile": "./ehr-ca.pem",)"), 0) << err_;
    EXPECT_NE(out_.find("answered: TLS verified"), std::string::npos) << out_;
}

TEST_F(ConfigConnectTest, AnEhrCertificateTheConfiguredCaDidNotSignNamesCaFile) {
    StartEhr(true);
    EXPECT_EQ(Check(ehr_->BaseUrl(), R"("caFile": "./other-ca.pem",)"), 2);
    EXPECT_NE(err_.find("error: ehr.caFile: TLS with"), std::string::npos) << err_;
    EXPECT_EQ(ehr_->RequestCount("GET", RequestKind::kMetadata), 0u);
}

TEST_F(ConfigConnectTest, AMetadataAnswerThatIsNotACapabilityStatementIsRefused) {
    StartEhr(false);
    ehr_->InjectFault("GET", "metadata",
                      Fault::Status(200, R"({"resourceType": "Patient", "id": "p1"})"));
    EXPECT_EQ(Check(ehr_->BaseUrl()), 2);
    EXPECT_NE(err_.find("error: ehr.baseUrl: GET " + ehr_->BaseUrl() +
                        "/metadata answered a Patient, not a CapabilityStatement"),
              std::string::npos)
        << err_;
}

TEST_F(ConfigConnectTest, AServerOfAnotherFhirVersionIsRefused) {
    StartEhr(false);
    ehr_->InjectFault("GET", "metadata",
                      Fault::Status(200, R"({"resourceType": "CapabilityStatement",
                                             "fhirVersion": "5.0.0"})"));
    EXPECT_EQ(Check(ehr_->BaseUrl()), 2);
    EXPECT_NE(err_.find("declares FHIR 5.0.0"), std::string::npos) << err_;
}

TEST_F(ConfigConnectTest, ASmartTokenIsObtainedAndSentWithTheMetadataRequest) {
    StartEhr(false);
    ehr_->InjectFault("POST", "token", Fault::Status(200, R"({"access_token": "granted-token",
                                             "token_type": "bearer", "expires_in": 300})"));
    EXPECT_EQ(Check(ehr_->BaseUrl(), Smart(ehr_->BaseUrl() + "/token")), 0) << err_;
    EXPECT_NE(out_.find("SMART token obtained"), std::string::npos) << out_;
    bool sent = false;
    for (const ReceivedRequest& request : ehr_->Requests()) {
        if (request.kind == RequestKind::kMetadata) {
            sent = request.Header("authorization") == "Bearer granted-token";
        }
    }
    EXPECT_TRUE(sent);
}

TEST_F(ConfigConnectTest, ATokenEndpointThatRefusesNamesTokenEndpoint) {
    StartEhr(false);
    ehr_->InjectFault("POST", "token", Fault::Status(401, R"({"error": "invalid_client"})"));
    EXPECT_EQ(Check(ehr_->BaseUrl(), Smart(ehr_->BaseUrl() + "/token")), 2);
    EXPECT_NE(err_.find("error: ehr.auth.tokenEndpoint: the token endpoint " + ehr_->BaseUrl() +
                        "/token gave no access token"),
              std::string::npos)
        << err_;
    EXPECT_EQ(ehr_->RequestCount("GET", RequestKind::kMetadata), 0u);
}

}  // namespace
}  // namespace microcare::testing
