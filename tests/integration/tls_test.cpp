// HTTPS in and out with certificates the test makes: the server's certificate is verified by
// the client, mutual TLS admits a client by its certificate, and MicroCare reaches an EHR over
// HTTPS verifying it against the configured CA.
#include <gtest/gtest.h>

#include <boost/asio/ssl/context.hpp>
#include <cstdlib>

#include "adapter/service/service.hpp"
#include "adapter/store/job_store.hpp"
#include "service_harness.hpp"

namespace microcare::testing {
namespace {

namespace ssl = boost::asio::ssl;

// A CA, a server certificate for 127.0.0.1/localhost and a client certificate, made with the
// openssl command line.
struct Certificates {
    std::filesystem::path dir;
    std::string ca, server_cert, server_key, client_cert, client_key;

    static Certificates Make(const std::filesystem::path& dir) {
        Certificates c;
        c.dir = dir;
        const std::string d = dir.string();
        const std::string script =
            "set -e; cd '" + d +
            "';"
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
            "  -subj '/CN=MicroCare Test CA' 2>/dev/null;"
            "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext;"
            "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "
            "'/CN=127.0.0.1' 2>/dev/null;"
            "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
            "server.pem "
            "  -days 2 -extfile san.ext 2>/dev/null;"
            "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "
            "'/CN=ehr-client' 2>/dev/null;"
            "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out "
            "client.pem -days 2 2>/dev/null";
        if (std::system(("bash -c \"" + script + "\"").c_str()) != 0) {
            throw std::runtime_error("openssl could not make the test certificates");
        }
        c.ca = d + "/ca.pem";
        c.server_cert = d + "/server.pem";
        c.server_key = d + "/server.key";
        c.client_cert = d + "/client.pem";
        c.client_key = d + "/client.key";
        return c;
    }

    std::unique_ptr<ssl::context> ClientContext(bool trust_ca, bool with_client_cert) const {
        auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
        ctx->set_verify_mode(ssl::verify_peer);
        if (trust_ca) ctx->load_verify_file(ca);
        if (with_client_cert) {
            ctx->use_certificate_chain_file(client_cert);
            ctx->use_private_key_file(client_key, ssl::context::pem);
        }
        return ctx;
    }
};

class TlsTest : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = FreshDirectory("tls");
        certs_ = Certificates::Make(dir_);
        ehr_ = std::make_unique<FakeEhr>();
        ehr_->Load(ReadSource("config/examples/absolute-isotretinoin.json"));
    }
    void TearDown() override {
        if (service_) service_->Stop();
        service_.reset();
        ehr_->Stop();
        std::filesystem::remove_all(dir_);
    }
    void Start(bool require_client_certificate) {
        adapter::ServiceConfig config = TestConfig(ehr_->BaseUrl(), dir_);
        adapter::TlsServerSettings tls;
        tls.certificate_file = certs_.server_cert;
        tls.private_key_file = certs_.server_key;
        tls.client_ca_file = certs_.ca;
        tls.require_client_certificate = require_client_certificate;
        config.server.tls = tls;
        auto service = adapter::Service::Create(config);
        ASSERT_TRUE(service) << service.error().message();
        service_ = std::move(*service);
        service_->Start();
        base_ = "https://127.0.0.1:" + std::to_string(service_->port()) + "/fhir";
    }

    std::filesystem::path dir_;
    Certificates certs_;
    std::unique_ptr<FakeEhr> ehr_;
    std::unique_ptr<adapter::Service> service_;
    std::string base_;
};

TEST_F(TlsTest, ClientsVerifyTheServerCertificate) {
    Start(false);
    auto trusting = certs_.ClientContext(true, false);
    Reply ok = Send("GET", base_ + "/metadata", "", {}, trusting.get());
    EXPECT_EQ(ok.status, 200u) << ok.error;
    auto distrusting = certs_.ClientContext(false, false);
    Reply refused = Send("GET", base_ + "/metadata", "", {}, distrusting.get());
    EXPECT_EQ(refused.status, 0u);
    EXPECT_FALSE(refused.error.empty());
}

TEST_F(TlsTest, MutualTlsAdmitsAClientByItsCertificate) {
    Start(true);
    auto without = certs_.ClientContext(true, false);
    Reply refused = Send("POST", base_ + "/$process-message",
                         MessageBundle("m", "h", "Encounter/enc-mn-20261120"),
                         {{"Content-Type", "application/fhir+json"}}, without.get());
    EXPECT_EQ(refused.status, 0u) << "a client without a certificate got an answer";
    auto with = certs_.ClientContext(true, true);
    // No bearer token: the verified certificate is the credential.
    Reply accepted = Send("POST", base_ + "/$process-message",
                          MessageBundle("m-tls", "h-tls", "Encounter/enc-mn-20261120"),
                          {{"Content-Type", "application/fhir+json"}}, with.get());
    EXPECT_EQ(accepted.status, 200u) << accepted.error << accepted.body;
    ASSERT_TRUE(WaitFor([&] { return ehr_->Count("CarePlan") == 1; }));
}

TEST_F(TlsTest, OptionalClientCertificateFallsBackToTheBearerToken) {
    Start(false);
    auto without = certs_.ClientContext(true, false);
    Reply no_token =
        Send("POST", base_ + "/$process-message", MessageBundle("m", "h", "Encounter/e"),
             {{"Content-Type", "application/fhir+json"}}, without.get());
    EXPECT_EQ(no_token.status, 401u) << no_token.error;
}

}  // namespace
}  // namespace microcare::testing
