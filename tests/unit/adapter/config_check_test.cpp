// `microcare config check` accepts what `serve` accepts: one test per mistake an admin makes,
// each refused with exit 2 and the JSON path of the setting at fault, and nothing else (one
// unset variable is one message).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "adapter/admin_commands.hpp"
#include "tests/unit/adapter/client/test_pki.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"

namespace microcare::adapter {
namespace {

using test_support::TempDirectory;

class ConfigCheckTest : public ::testing::Test {
protected:
    ConfigCheckTest() {
        const auto pki = test_support::MakeCertificates("DNS:localhost");
        Write("server.pem", pki.cert_pem);
        Write("server.key", pki.key_pem);
        Write("other.key", test_support::GenerateRsaKeyPem());
        Write("smart.pem", test_support::GenerateEcKeyPem());
        Write("pack.json", "{\"id\": \"broken\"}");
        settings_ = {
            {"tls",
             R"("tls": {"certificateFile": "./server.pem", "privateKeyFile": "./server.key"},)"},
            {"smart", R"("auth": {"type": "smart-backend", "clientId": "mc", "algorithm": "ES384",
                          "privateKeyFile": "./smart.pem", "tokenEndpoint": "https://ehr.example/token"},)"},
            {"rules", "\"" MICROCARE_SOURCE_DIR "/config/rules/microneedling.json\""},
            {"base", "\"https://ehr.example/fhir\""},
        };
    }

    void Write(const std::string& name, const std::string& text) {
        std::ofstream(dir_.File(name)) << text;
    }

    int Check() {
        std::ofstream(dir_.File("microcare.json"))
            << R"({"server": {)" << settings_["tls"] << R"( "auth": {"allowAnonymous": true}},
            "ehr": {)"
            << settings_["smart"] << R"( "baseUrl": )" << settings_["base"] << R"(},
            "store": {"path": "./data/microcare.db"}, "audit": {"path": "./data/audit.log"},
            "rules": {"path": )"
            << settings_["rules"] << "}}";
        std::ostringstream out;
        std::ostringstream err;
        const int code = RunConfigCheck(dir_.File("microcare.json"), out, err);
        out_ = out.str();
        err_ = err.str();
        return code;
    }

    // The lines naming a problem (the closing "refused" line aside).
    std::size_t Problems() const {
        std::size_t lines = 0;
        std::istringstream in(err_);
        for (std::string line; std::getline(in, line);)
            lines += line.find(": error: ") != std::string::npos;
        return lines;
    }

    TempDirectory dir_;
    std::map<std::string, std::string> settings_;
    std::string out_;
    std::string err_;
};

TEST_F(ConfigCheckTest, AGoodConfigurationIsValid) {
    EXPECT_EQ(Check(), 0) << err_;
    EXPECT_NE(out_.find("valid"), std::string::npos) << out_;
}

TEST_F(ConfigCheckTest, AMissingTlsFileIsNamed) {
    std::filesystem::remove(dir_.File("server.pem"));
    EXPECT_EQ(Check(), 2);
    EXPECT_NE(err_.find("server.tls.certificateFile: "), std::string::npos) << err_;
    EXPECT_NE(err_.find(dir_.File("server.pem")), std::string::npos) << err_;
    EXPECT_EQ(Problems(), 1u) << err_;
}

TEST_F(ConfigCheckTest, AKeyThatIsNotTheCertificatesIsNamed) {
    std::filesystem::copy_file(dir_.File("other.key"), dir_.File("server.key"),
                               std::filesystem::copy_options::overwrite_existing);
    EXPECT_EQ(Check(), 2);
    EXPECT_NE(err_.find("server.tls.privateKeyFile: "), std::string::npos) << err_;
    EXPECT_EQ(Problems(), 1u) << err_;
}

TEST_F(ConfigCheckTest, AMissingPackFileIsNamed) {
    settings_["rules"] = "\"./no-such-pack.json\"";
    EXPECT_EQ(Check(), 2);
    EXPECT_NE(err_.find("rules.path: "), std::string::npos) << err_;
    EXPECT_NE(err_.find("no-such-pack.json"), std::string::npos) << err_;
    EXPECT_EQ(Problems(), 1u) << err_;
}

TEST_F(ConfigCheckTest, ABadPackIsRefusedAsRulesCheckRefusesIt) {
    settings_["rules"] = "\"./pack.json\"";
    EXPECT_EQ(Check(), 2);
    EXPECT_NE(err_.find("rules.path: "), std::string::npos) << err_;
    EXPECT_NE(err_.find("version"), std::string::npos) << "the pack's own path\n" << err_;
}

TEST_F(ConfigCheckTest, ABareRelativePathIsRefusedWithTheFix) {
    settings_["rules"] = "\"pack.json\"";
    EXPECT_EQ(Check(), 2);
    EXPECT_NE(err_.find("rules.path: "), std::string::npos) << err_;
    EXPECT_NE(err_.find("./pack.json"), std::string::npos) << err_;
    EXPECT_EQ(Problems(), 1u) << err_;
}

TEST_F(ConfigCheckTest, AnUnreadableOrUnusableSmartKeyIsNamed) {
    Write("smart.pem", "not a key");
    EXPECT_EQ(Check(), 2);
    EXPECT_NE(err_.find("ehr.auth.privateKeyFile: "), std::string::npos) << err_;
    EXPECT_EQ(Problems(), 1u) << err_;
    if (::geteuid() != 0) {  // root reads any file
        ::chmod(dir_.File("smart.pem").c_str(), 0);
        EXPECT_EQ(Check(), 2);
        EXPECT_NE(err_.find("ehr.auth.privateKeyFile: "), std::string::npos) << err_;
        EXPECT_NE(err_.find("cannot read"), std::string::npos) << err_;
        EXPECT_EQ(Problems(), 1u) << err_;
    }
}

TEST_F(ConfigCheckTest, AnUnsetVariableIsOneMessage) {
    ::unsetenv("MICROCARE_TEST_UNSET_BASE");
    settings_["base"] = "\"${MICROCARE_TEST_UNSET_BASE}\"";
    EXPECT_EQ(Check(), 2);
    EXPECT_NE(err_.find("ehr.baseUrl: "), std::string::npos) << err_;
    EXPECT_NE(err_.find("MICROCARE_TEST_UNSET_BASE"), std::string::npos) << err_;
    EXPECT_EQ(Problems(), 1u) << err_;
}

}  // namespace
}  // namespace microcare::adapter
