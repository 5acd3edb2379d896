#include "fhir/json_path_reader.hpp"

#include <gtest/gtest.h>

namespace microcare::fhir {
namespace {

TEST(JsonPathReader, NamesEveryProblemWithItsPathInTheSameWords) {
    IssueList issues;
    auto doc = JsonDocument::Parse(
        R"({"a": 1, "typo": 2, "n": 1e300, "f": 1.5, "b": "yes", "o": [], "l": {}})", issues);
    ASSERT_TRUE(doc);
    JsonPathReader reader(issues);
    const Node root = doc->Root();
    reader.Keys(root, "", {"a", "n", "f", "b", "o", "l"});
    EXPECT_EQ(reader.WholeNumber(root["a"], "a", 0, 10), 1);
    // Out of range is refused before any conversion (1e300 does not fit a long long).
    EXPECT_FALSE(reader.WholeNumber(root["n"], "n", 0, 10));
    EXPECT_FALSE(reader.WholeNumber(root["f"], "f", 0, 10, "of sessions"));
    EXPECT_FALSE(reader.WholeNumber(root["missing"], "missing", 0, 10));
    EXPECT_FALSE(reader.Bool(root["b"], "b"));
    EXPECT_FALSE(reader.Object(root["o"], "o"));
    EXPECT_FALSE(reader.Array(root["l"], "l"));
    EXPECT_FALSE(reader.Object(root["none"], "none"));
    EXPECT_FALSE(reader.Array(root["none"], "none", false));

    std::vector<std::string> seen;
    for (const Issue& issue : issues) seen.push_back(issue.path + ": " + issue.message);
    const std::vector<std::string> expected = {
        "typo: unknown key; allowed here: a, n, f, b, o, l",
        "n: must be a whole number from 0 to 10",
        "f: must be a whole number of sessions from 0 to 10",
        "b: must be true or false",
        "o: must be an object, found array",
        "l: must be an array, found object",
        "none: missing",
    };
    EXPECT_EQ(seen, expected);
}

}  // namespace
}  // namespace microcare::fhir
