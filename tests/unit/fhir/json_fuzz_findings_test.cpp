// Inputs the JSON fuzzer (tests/fuzz/json_fuzz.cpp) found; the same inputs are replayed from
// tests/fuzz/regressions/json/ on every fuzz run.
#include <gtest/gtest.h>

#include "fhir/json.hpp"

namespace microcare::fhir {
namespace {

// "" is a legal member name: a document holding one used to differ from itself under
// JsonEqual, because looking a member up by the empty name found nothing.
TEST(JsonFuzzFindings, EmptyMemberNameIsFoundAndComparesEqual) {
    IssueList issues;
    auto doc = JsonDocument::Parse(R"({"": 1, "a": {"": [{"": null, "b": ""}]}})", issues);
    ASSERT_TRUE(doc);
    EXPECT_EQ(doc->Root()[""].NumberText(), "1");
    EXPECT_TRUE(doc->Root()["a"][""][0][""].IsNull());
    EXPECT_TRUE(JsonEqual(doc->Root(), doc->Root()));
    auto again = JsonDocument::Parse(Serialize(doc->Root()), issues);
    ASSERT_TRUE(again);
    EXPECT_TRUE(JsonEqual(doc->Root(), again->Root()));
}

}  // namespace
}  // namespace microcare::fhir
