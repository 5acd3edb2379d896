#include "rules/rule_set_loader.hpp"

#include <gtest/gtest.h>

#include <map>

namespace microcare::rules {
namespace {

// A small valid pack; each test breaks one thing in it.
const std::string kPack = R"({
  "id": "test-pack", "version": "1.0.0", "title": "Test",
  "statusDefaults": {
    "Condition": {"ongoing": ["active"], "past": []},
    "MedicationRequest": {"ongoing": ["active"], "past": ["completed", "stopped"]},
    "Observation": {"ongoing": [], "past": ["final"]}
  },
  "caps": [{"resourceType": "Condition", "verificationStatus": ["provisional"],
            "severity": "relative", "note": "not confirmed"}],
  "valueSets": {
    "mn": {"codes": [{"system": "https://microcare.example/CodeSystem/procedure", "code": "microneedling"}],
           "text": ["microneedl*"]},
    "keloid": {"codes": [{"system": "http://snomed.info/sct", "code": "33659008"}]},
    "iso": {"file": "valuesets/iso.json", "text": ["isotretinoin"]}
  },
  "microneedling": {"valueSet": "mn", "encounterStatus": ["finished"], "procedureStatus": ["completed"]},
  "contraindications": [
    {"id": "A12", "title": "Keloid", "severity": "absolute", "issueCode": "COND",
     "evidence": [{"resourceTypes": ["Condition"], "valueSet": "keloid"}],
     "message": "m", "action": "a", "source": "s"},
    {"id": "A8", "title": "Isotretinoin", "severity": "absolute", "issueCode": "DRG",
     "evidence": [{"resourceTypes": ["MedicationRequest"], "valueSet": "iso", "lookBack": "P0D"}],
     "message": "m", "action": "a", "source": "s"}
  ],
  "aftercare": {
    "check": {"code": {"system": "http://snomed.info/sct", "code": "386473003"},
              "due": "PT48H", "earliest": "PT24H", "latest": "PT72H", "description": "d"},
    "series": {"countWithin": "P12M", "length": 3, "earliest": "P4W", "latest": "P6W",
               "code": {"system": "http://snomed.info/sct", "code": "390906007"}},
    "maintenance": {"code": {"system": "http://snomed.info/sct", "code": "185389009"},
                    "earliest": "P6M", "latest": "P12M"},
    "education": {"code": {"system": "http://snomed.info/sct", "code": "225967005"}},
    "instructions": [{"id": "day-1", "from": "PT0H", "until": "PT24H", "text": "t"}]
  }
})";

const std::string kValueSetFile = R"({"resourceType": "ValueSet", "status": "active",
  "expansion": {"timestamp": "2026-01-01", "contains": [
    {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197843"},
    {"abstract": true, "contains": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197844"}]}]}})";

struct LoadResult {
    std::optional<RuleSet> set;
    fhir::IssueList issues;
};

LoadResult Load(const std::string& pack, std::map<std::string, std::string> files = {
                                             {"valuesets/iso.json", kValueSetFile}}) {
    LoadResult result;
    PackFileReader reader = [files](std::string_view path) -> std::optional<std::string> {
        auto it = files.find(std::string(path));
        if (it == files.end()) return std::nullopt;
        return it->second;
    };
    result.set = LoadRuleSet(pack, reader, result.issues);
    return result;
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    return text;
}

// Expects the pack to be refused with an issue at `path` whose message contains `words`.
void ExpectRefused(const std::string& pack, const std::string& path, const std::string& words) {
    LoadResult result = Load(pack);
    EXPECT_FALSE(result.set.has_value()) << "accepted a pack with a mistake at " << path;
    bool seen = false;
    std::string all;
    for (const fhir::Issue& issue : result.issues) {
        all += issue.path + ": " + issue.message + "\n";
        seen = seen || (issue.path == path && issue.message.find(words) != std::string::npos);
    }
    EXPECT_TRUE(seen) << "wanted " << path << ": ..." << words << "...; got:\n" << all;
}

TEST(RuleSetLoader, LoadsAValidPackAndIndexesIt) {
    LoadResult result = Load(kPack);
    ASSERT_TRUE(result.set) << fhir::FormatIssue(result.issues.issues().at(0));
    EXPECT_TRUE(result.issues.empty());
    const RuleSet& set = *result.set;
    EXPECT_EQ(set.id, "test-pack");
    EXPECT_EQ(set.rules.size(), 2u);
    EXPECT_EQ(set.value_sets.size(), 3u);
    // Codes from the ValueSet file, nested contains included, and the inline text pattern.
    fhir::Concept product{{{"http://www.nlm.nih.gov/research/umls/rxnorm", "197844", ""}}, {}};
    EXPECT_TRUE(set.codes.Match(product).test(2));
    fhir::Concept named{{}, "Isotretinoin 20 MG capsule"};
    EXPECT_TRUE(set.codes.Match(named).test(2));
    EXPECT_EQ(set.criteria_by_value_set[1].size(), 1u);
}

TEST(RuleSetLoader, SyntaxErrorsAreReportedWithTheirPosition) {
    ExpectRefused("{\"id\": \"x\",}", "", "line 1");
}

TEST(RuleSetLoader, UnknownKeysAreRefused) {
    ExpectRefused(Replace(kPack, "\"severity\": \"absolute\", \"issueCode\": \"COND\"",
                          "\"severity\": \"absolute\", \"isueCode\": \"COND\""),
                  "contraindications[0].isueCode", "unknown key");
}

TEST(RuleSetLoader, MissingRequiredFields) {
    ExpectRefused(Replace(kPack, "\"id\": \"test-pack\",", ""), "id", "missing");
    ExpectRefused(Replace(kPack, "\"title\": \"Keloid\",", ""), "contraindications[0].title",
                  "missing");
}

TEST(RuleSetLoader, BadDurations) {
    ExpectRefused(Replace(kPack, "\"lookBack\": \"P0D\"", "\"lookBack\": \"6 months\""),
                  "contraindications[1].evidence[0].lookBack", "not a FHIR duration");
    ExpectRefused(Replace(kPack, "\"earliest\": \"P4W\"", "\"earliest\": \"P8W\""),
                  "aftercare.series", "earliest must not come after latest");
}

TEST(RuleSetLoader, UnknownValueSetsAndRules) {
    ExpectRefused(Replace(kPack, "\"valueSet\": \"keloid\"", "\"valueSet\": \"keloids\""),
                  "contraindications[0].evidence[0].valueSet", "not a value set");
    ExpectRefused(Replace(kPack, "\"issueCode\": \"DRG\",",
                          "\"issueCode\": \"DRG\", \"suppressedBy\": [\"A99\"],"),
                  "contraindications[1].suppressedBy[0]", "not a rule");
}

TEST(RuleSetLoader, DuplicateRuleIds) {
    ExpectRefused(Replace(kPack, "\"id\": \"A8\"", "\"id\": \"A12\""), "contraindications[1].id",
                  "used by contraindications[0]");
}

TEST(RuleSetLoader, MisspeltStatusesAndSeverities) {
    ExpectRefused(Replace(kPack, "\"ongoing\": [\"active\"], \"past\": []",
                          "\"ongoing\": [\"actve\"], \"past\": []"),
                  "statusDefaults.Condition.ongoing[0]", "not a status");
    ExpectRefused(Replace(kPack, "\"severity\": \"absolute\", \"issueCode\": \"COND\"",
                          "\"severity\": \"block\", \"issueCode\": \"COND\""),
                  "contraindications[0].severity", "absolute, relative or info");
    ExpectRefused(Replace(kPack, "\"issueCode\": \"COND\"", "\"issueCode\": \"KELOID\""),
                  "contraindications[0].issueCode", "not one of");
}

TEST(RuleSetLoader, PastStatusesNeedALookBack) {
    ExpectRefused(Replace(kPack, ", \"lookBack\": \"P0D\"", ""),
                  "contraindications[1].evidence[0].lookBack", "required");
}

TEST(RuleSetLoader, WrongResourceTypesAndTests) {
    ExpectRefused(
        Replace(kPack, "\"resourceTypes\": [\"Condition\"]", "\"resourceTypes\": [\"Conditon\"]"),
        "contraindications[0].evidence[0].resourceTypes[0]", "not a resource type");
    ExpectRefused(
        Replace(kPack, "\"valueSet\": \"keloid\"}",
                "\"valueSet\": \"keloid\", \"quantity\": {\"comparator\": \">=\", \"value\": 8}}"),
        "contraindications[0].evidence[0].quantity", "Observations only");
}

TEST(RuleSetLoader, BadTextPatternsAndIds) {
    ExpectRefused(Replace(kPack, "[\"microneedl*\"]", "[\"m\"]"), "valueSets.mn.text[0]",
                  "not a text pattern");
    ExpectRefused(Replace(kPack, "\"version\": \"1.0.0\"", "\"version\": \"1.0 beta\""), "version",
                  "not an id");
}

TEST(RuleSetLoader, ValueSetFilesMustExistAndBeValueSets) {
    LoadResult missing = Load(kPack, {});
    EXPECT_FALSE(missing.set);
    ASSERT_FALSE(missing.issues.empty());
    EXPECT_EQ(missing.issues.issues()[0].path, "valueSets.iso.file");
    EXPECT_NE(missing.issues.issues()[0].message.find("cannot be read"), std::string::npos);

    LoadResult wrong = Load(kPack, {{"valuesets/iso.json", R"({"resourceType": "Patient"})"}});
    EXPECT_FALSE(wrong.set);
    ASSERT_FALSE(wrong.issues.empty());
    EXPECT_NE(wrong.issues.issues()[0].message.find("not a FHIR ValueSet"), std::string::npos);

    ExpectRefused(Replace(kPack, "valuesets/iso.json", "../../etc/passwd"), "valueSets.iso.file",
                  "inside the pack's folder");
}

TEST(RuleSetLoader, SuppressedByAndExcludedByNameOtherRules) {
    ExpectRefused(Replace(kPack, R"("message": "m", "action": "a")",
                          R"("excludedBy": ["A404"], "message": "m", "action": "a")"),
                  "contraindications[0].excludedBy[0]", "not a rule of this pack");
    ExpectRefused(Replace(kPack, R"("message": "m", "action": "a")",
                          R"("suppressedBy": ["A12"], "message": "m", "action": "a")"),
                  "contraindications[0].suppressedBy[0]", "this rule itself");
    LoadResult result = Load(Replace(kPack, R"("message": "m", "action": "a")",
                                     R"("excludedBy": ["A8"], "message": "m", "action": "a")"));
    ASSERT_TRUE(result.set.has_value());
    EXPECT_EQ(result.set->rules[0].excluded_by, std::vector<std::size_t>{1});
    EXPECT_TRUE(result.set->rules[0].suppressed_by.empty());
}

TEST(RuleSetLoader, ReportsEveryProblemAtOnce) {
    std::string pack = Replace(kPack, "\"lookBack\": \"P0D\"", "\"lookBack\": \"soon\"");
    pack = Replace(pack, "\"issueCode\": \"COND\"", "\"issueCode\": \"X\"");
    pack = Replace(pack, "\"length\": 3", "\"length\": 0");
    LoadResult result = Load(pack);
    EXPECT_FALSE(result.set);
    EXPECT_GE(result.issues.size(), 3u);
}

// ---- identity ------------------------------------------------------------------------------

// The digest the service uses is SHA-256 (adapter/rule_pack_file.cpp); here the digest returns
// the canonical content itself, so that the tests see exactly what would be hashed.
std::string CanonicalOf(const std::string& pack, const std::string& value_set_file) {
    fhir::IssueList issues;
    PackFileReader reader = [&](std::string_view path) -> std::optional<std::string> {
        if (path != "valuesets/iso.json") return std::nullopt;
        return value_set_file;
    };
    auto set = LoadRuleSet(pack, reader, issues,
                           [](std::string_view canonical) { return std::string(canonical); });
    EXPECT_TRUE(set.has_value());
    return set ? set->sha256 : std::string();
}

std::string Reindent(std::string text) {
    std::string out;
    for (char c : text) {
        out += c;
        if (c == ',' || c == '{' || c == '[') out += "\n\t  ";
    }
    return out;
}

TEST(RuleSetLoaderIdentity, CanonicalContentIsThePackThenEachFileCompact) {
    const std::string canonical = CanonicalOf(kPack, kValueSetFile);
    EXPECT_TRUE(canonical.starts_with(R"({"id":"test-pack","version":"1.0.0","title":"Test",)"))
        << canonical;
    EXPECT_TRUE(canonical.ends_with(
        "\n"
        R"({"resourceType":"ValueSet","status":"active","expansion":{"timestamp":)"
        R"("2026-01-01","contains":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm",)"
        R"("code":"197843"},{"abstract":true,"contains":[{"system":)"
        R"("http://www.nlm.nih.gov/research/umls/rxnorm","code":"197844"}]}]}})"))
        << canonical;
}

TEST(RuleSetLoaderIdentity, WhitespaceDoesNotChangeIt) {
    const std::string canonical = CanonicalOf(kPack, kValueSetFile);
    EXPECT_EQ(CanonicalOf(Reindent(kPack), kValueSetFile), canonical);
    EXPECT_EQ(CanonicalOf(kPack, Reindent(kValueSetFile)), canonical);
}

TEST(RuleSetLoaderIdentity, AChangedValueSetFileOrPackChangesIt) {
    const std::string canonical = CanonicalOf(kPack, kValueSetFile);
    EXPECT_NE(CanonicalOf(kPack, Replace(kValueSetFile, "197843", "197845")), canonical);
    EXPECT_NE(
        CanonicalOf(Replace(kPack, R"("title": "Test")", R"("title": "Test 2")"), kValueSetFile),
        canonical);
}

TEST(RuleSetLoaderIdentity, NoDigestLeavesItEmpty) {
    LoadResult result = Load(kPack);
    ASSERT_TRUE(result.set.has_value());
    EXPECT_EQ(result.set->sha256, "");
    EXPECT_EQ(result.set->Identity().id, "test-pack");
    EXPECT_EQ(result.set->Identity().version, "1.0.0");
}

}  // namespace
}  // namespace microcare::rules
