// The pack identity the service shows: SHA-256 over the canonical content the loader defines,
// value-set files included, through the real file reader.
#include "adapter/rule_pack_file.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "adapter/audit/audit_log.hpp"
#include "adapter/evaluate_command.hpp"
#include "adapter/file_io.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

const std::string kShipped = std::string(MICROCARE_SOURCE_DIR) + "/config/rules/microneedling.json";

const std::string kExtraValueSet =
    R"({"resourceType":"ValueSet","status":"active","expansion":{"contains":[)"
    R"({"system":"http://snomed.info/sct","code":"1234567"}]}})";

std::string Shipped() {
    auto text = ReadFile(kShipped);
    EXPECT_TRUE(text.has_value());
    return text.value_or("");
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
}

std::string Pretty(const std::string& json) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(json, issues);
    EXPECT_TRUE(doc.has_value());
    return doc ? fhir::Serialize(doc->Root(), true) : std::string();
}

// A pack folder: the shipped pack plus a value set read from a file.
class PackFolder : public ::testing::Test {
protected:
    void SetUp() override {
        dir_ = std::filesystem::temp_directory_path() /
               ("microcare-pack-" + std::to_string(::getpid()) + "-" +
                ::testing::UnitTest::GetInstance()->current_test_info()->name());
        std::filesystem::create_directories(dir_ / "valuesets");
    }
    void TearDown() override { std::filesystem::remove_all(dir_); }

    std::string Write(const std::string& pack, const std::string& value_set) {
        std::ofstream(dir_ / "pack.json") << pack;
        std::ofstream(dir_ / "valuesets" / "extra.json") << value_set;
        return (dir_ / "pack.json").string();
    }

    std::string Sha256(const std::string& pack, const std::string& value_set) {
        fhir::IssueList issues;
        auto set = LoadRulePackFile(Write(pack, value_set), issues);
        EXPECT_TRUE(set.has_value());
        return set ? set->sha256 : std::string();
    }

    static std::string WithFile(std::string pack) {
        return Replace(std::move(pack), R"("valueSets": {)",
                       R"("valueSets": {"extra": {"file": "valuesets/extra.json"},)");
    }

    std::filesystem::path dir_;
};

TEST(RulePackFile, ShippedPackHashIsSha256OfItsCompactJson) {
    fhir::IssueList issues;
    auto set = LoadRulePackFile(kShipped, issues);
    ASSERT_TRUE(set.has_value());
    EXPECT_EQ(set->sha256.size(), 64u);
    EXPECT_EQ(set->sha256.find_first_not_of("0123456789abcdef"), std::string::npos);
    fhir::IssueList parse_issues;
    auto doc = fhir::JsonDocument::Parse(Shipped(), parse_issues);
    ASSERT_TRUE(doc.has_value());
    EXPECT_EQ(set->sha256, Sha256Hex(fhir::Serialize(doc->Root())));
}

TEST_F(PackFolder, WhitespaceInThePackOrItsFilesKeepsTheHash) {
    const std::string pack = WithFile(Shipped());
    const std::string sha = Sha256(pack, kExtraValueSet);
    EXPECT_EQ(Sha256(Pretty(pack), kExtraValueSet), sha);
    EXPECT_EQ(Sha256(pack, Pretty(kExtraValueSet)), sha);
}

TEST_F(PackFolder, AChangedValueSetFileChangesTheHash) {
    const std::string pack = WithFile(Shipped());
    const std::string sha = Sha256(pack, kExtraValueSet);
    EXPECT_NE(Sha256(pack, Replace(kExtraValueSet, "1234567", "7654321")), sha);
    // Same id and version in every case: only the hash tells these packs apart.
    EXPECT_NE(Sha256(Shipped(), kExtraValueSet), sha);
}

TEST(RulePackFile, RulesCheckPrintsTheHash) {
    fhir::IssueList issues;
    auto set = LoadRulePackFile(kShipped, issues);
    ASSERT_TRUE(set.has_value());
    std::ostringstream out;
    std::ostringstream err;
    EXPECT_EQ(RunRulesCheck(kShipped, out, err), 0);
    EXPECT_NE(out.str().find("rule pack " + set->id + " " + set->version + " is valid"),
              std::string::npos)
        << out.str();
    EXPECT_NE(out.str().find("sha256 " + set->sha256 + "\n"), std::string::npos) << out.str();
}

}  // namespace
}  // namespace microcare::adapter
