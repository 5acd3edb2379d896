#include "fhir/json.hpp"

#include <gtest/gtest.h>

namespace microcare::fhir {
namespace {

JsonDocument ParseOk(const std::string& text) {
    IssueList issues;
    auto doc = JsonDocument::Parse(text, issues);
    EXPECT_TRUE(doc.has_value()) << (issues.empty() ? "" : issues.issues()[0].message);
    return std::move(*doc);
}

TEST(Json, KeepsDecimalPrecisionOnTheWayBack) {
    const std::string text =
        R"({"value":1.50,"big":12345678901234567890123,"exp":1e-3,"neg":-0.0,"int":7})";
    JsonDocument doc = ParseOk(text);
    EXPECT_EQ(doc.Root()["value"].NumberText(), "1.50");
    EXPECT_DOUBLE_EQ(*doc.Root()["value"].Number(), 1.5);
    EXPECT_EQ(Serialize(doc.Root()), text);
}

TEST(Json, NumbersAreNotStringsAndStringsAreNotNumbers) {
    JsonDocument doc = ParseOk(R"({"n":2.0,"s":"2.0"})");
    EXPECT_TRUE(doc.Root()["n"].IsNumber());
    EXPECT_FALSE(doc.Root()["n"].IsString());
    EXPECT_EQ(doc.Root()["n"].String(), "");
    EXPECT_TRUE(doc.Root()["s"].IsString());
    EXPECT_FALSE(doc.Root()["s"].IsNumber());
    EXPECT_EQ(Serialize(doc.Root()), R"({"n":2.0,"s":"2.0"})");
}

TEST(Json, MissingMembersChainToEmptyNodes) {
    JsonDocument doc = ParseOk(R"({"code":{"coding":[{"code":"x"}]}})");
    EXPECT_EQ(doc.Root()["code"]["coding"][0]["code"].String(), "x");
    EXPECT_FALSE(doc.Root()["code"]["coding"][5]["code"].Exists());
    EXPECT_FALSE(doc.Root()["nothing"]["at"]["all"].Exists());
    EXPECT_EQ(doc.Root()["code"]["coding"].Size(), 1u);
}

TEST(Json, SyntaxErrorsNameLineAndColumn) {
    IssueList issues;
    auto doc = JsonDocument::Parse("{\n  \"a\": 1,\n  \"b\": }", issues);
    ASSERT_FALSE(doc.has_value());
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_NE(issues.issues()[0].message.find("line 3"), std::string::npos)
        << issues.issues()[0].message;
}

TEST(Json, RefusesNulCharactersInStrings) {
    IssueList issues;
    EXPECT_FALSE(JsonDocument::Parse(R"({"a":"x\u0000y"})", issues).has_value());
    EXPECT_NE(issues.issues()[0].message.find("U+0000"), std::string::npos);
}

TEST(Json, RefusesExcessiveNesting) {
    IssueList issues;
    std::string deep(500, '[');
    deep += std::string(500, ']');
    EXPECT_FALSE(JsonDocument::Parse(deep, issues).has_value());
    EXPECT_NE(issues.issues()[0].message.find("nesting"), std::string::npos);
}

TEST(Json, RefusesInvalidUtf8AndTrailingGarbage) {
    IssueList issues;
    EXPECT_FALSE(JsonDocument::Parse("{\"a\":\"\xff\"}", issues).has_value());
    EXPECT_FALSE(JsonDocument::Parse("{} {}", issues).has_value());
    EXPECT_FALSE(JsonDocument::Parse("", issues).has_value());
}

TEST(Json, EscapesAndUnicodeSurviveTheRoundTrip) {
    const std::string text = R"({"div":"<p>\"caf\u00e9\" \\ \n</p>","emoji":"😀"})";
    JsonDocument doc = ParseOk(text);
    JsonDocument again = ParseOk(Serialize(doc.Root()));
    EXPECT_TRUE(JsonEqual(doc.Root(), again.Root()));
    EXPECT_EQ(again.Root()["div"].String(), "<p>\"café\" \\ \n</p>");
}

// Issue 7, item 3: RapidJSON decodes a lone low surrogate into bytes that are not UTF-8; they
// would reach response bodies, stored replies and the audit trail.
TEST(Json, RefusesLoneSurrogatesOfBothKindsWithTheirPath) {
    for (const std::string escape : {"\\udc00", "\\uDFFF", "\\ud800", "\\ud800x"}) {
        IssueList issues;
        const std::string text =
            R"({"resourceType":"Bundle","entry":[{"id":"a)" + escape + R"("}]})";
        EXPECT_FALSE(JsonDocument::Parse(text, issues).has_value()) << escape;
        ASSERT_EQ(issues.size(), 1u) << escape;
        if (escape.starts_with("\\udc") || escape.starts_with("\\uDF")) {
            EXPECT_EQ(issues.issues()[0].path, "Bundle.entry[0].id");
            EXPECT_NE(issues.issues()[0].message.find("surrogate"), std::string::npos);
        }
    }
    IssueList issues;
    EXPECT_FALSE(JsonDocument::Parse(R"({"x":{"a\udc00":1}})", issues).has_value());
    EXPECT_EQ(issues.issues().at(0).path, "x");
}

TEST(Json, ReadsPairedSurrogatesAndEscapedBackslashes) {
    JsonDocument doc = ParseOk(R"({"emoji":"\ud83d\ude00","text":"\\udc00"})");
    EXPECT_EQ(doc.Root()["emoji"].String(), "\xf0\x9f\x98\x80");
    EXPECT_EQ(doc.Root()["text"].String(), "\\udc00");
}

// Issue 7, item 3: with two `focus` members MicroCare read the first and most parsers the last.
TEST(Json, RefusesDuplicateMemberNamesWithTheirPath) {
    IssueList issues;
    auto doc = JsonDocument::Parse(
        R"({"resourceType":"Bundle","entry":[{"resource":{"focus":[1],"id":"x","focus":[2]}}]})",
        issues);
    EXPECT_FALSE(doc.has_value());
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_EQ(issues.issues()[0].path, "Bundle.entry[0].resource.focus");
    EXPECT_NE(issues.issues()[0].message.find("more than once"), std::string::npos);

    IssueList top;
    EXPECT_FALSE(JsonDocument::Parse(R"({"a":1,"b":2,"c":3,"a":4})", top).has_value());
    EXPECT_EQ(top.issues().at(0).path, "a");
    // An empty name is a name, not an array index.
    IssueList empty;
    EXPECT_FALSE(JsonDocument::Parse(R"({"x":[{"":1,"":2}]})", empty).has_value());
    EXPECT_EQ(empty.issues().at(0).path, R"(x[0][""])");
    // The same name in different objects is fine.
    ParseOk(R"({"a":{"a":1},"b":[{"a":1},{"a":2}]})");
}

TEST(Json, EqualityComparesNumbersByText) {
    JsonDocument a = ParseOk(R"({"x":[1.0,{"y":null,"z":true}]})");
    JsonDocument b = ParseOk(R"({"x":[1.0,{"z":true,"y":null}]})");
    JsonDocument c = ParseOk(R"({"x":[1.00,{"y":null,"z":true}]})");
    EXPECT_TRUE(JsonEqual(a.Root(), b.Root()));
    EXPECT_FALSE(JsonEqual(a.Root(), c.Root()));
}

// Issue 8: the writer copied bytes as they were, so a lone surrogate in a value made invalid
// JSON (in the audit trail among others).
TEST(Json, TheWriterMakesValidUtf8OfAnyBytes) {
    JsonWriter w;
    w.StartObject();
    w.Field("lone",
            "a\xed\xb0\x80"
            "b");
    w.Field("bad", "\xff\xc0\xaf");
    w.Field(std::string("k\xfe"), std::string("n\0ul", 4));
    w.Field("fine", "caf\xc3\xa9 \xf0\x9f\x98\x80");
    w.EndObject();
    JsonDocument doc = ParseOk(std::string(w.View()));
    EXPECT_EQ(doc.Root()["lone"].String(),
              "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
              "b");
    EXPECT_EQ(doc.Root()["k\xef\xbf\xbd"].String(), "n\xef\xbf\xbdul");
    EXPECT_EQ(doc.Root()["fine"].String(), "caf\xc3\xa9 \xf0\x9f\x98\x80");
    EXPECT_EQ(ToValidUtf8("plain"), "plain");
}

}  // namespace
}  // namespace microcare::fhir
