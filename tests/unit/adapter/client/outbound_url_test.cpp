#include "adapter/client/outbound_url.hpp"

#include <gtest/gtest.h>

namespace microcare::adapter {
namespace {

TEST(NormalHttpUrl, BringsHttpUrlsToOneForm) {
    EXPECT_EQ(NormalHttpUrl("HTTPS://EHR.Example:443/fhir/./a/../b?x=%7c"),
              "https://ehr.example/fhir/b?x=%7C");
    EXPECT_EQ(NormalHttpUrl("http://ehr:80/fhir"), "http://ehr/fhir");
    EXPECT_EQ(NormalHttpUrl("http://ehr:8080/fhir"), "http://ehr:8080/fhir");
    EXPECT_EQ(NormalHttpUrl("https://ehr/fhir/%2e%2e/admin"), "https://ehr/admin");
    EXPECT_EQ(NormalHttpUrl("http://[::1]:8080/fhir"), "http://[::1]:8080/fhir");
}

TEST(NormalHttpUrl, RefusesWhatIsNoHttpDestination) {
    for (const char* url :
         {"file:///etc/passwd", "gopher://ehr/x", "ftp://ehr/x", "//ehr/x", "/fhir/x", "fhir",
          "https://user:pw@ehr/x", "https://ehr/x#frag", "https:///x", "https://ehr/../../x",
          "javascript:alert(1)", "", "https://ehr/x y"}) {
        EXPECT_FALSE(NormalHttpUrl(url)) << url;
    }
}

TEST(HasScheme, TellsAbsoluteReferencesFromRelativeOnes) {
    EXPECT_TRUE(HasScheme("https://ehr/fhir"));
    EXPECT_TRUE(HasScheme("file:///etc/passwd"));
    EXPECT_TRUE(HasScheme("javascript:alert(1)"));
    // A URL inside a search parameter does not make the search absolute.
    EXPECT_FALSE(HasScheme("CarePlan?identifier=https://microcare.example/id|1"));
    EXPECT_FALSE(HasScheme("Encounter/1"));
    EXPECT_FALSE(HasScheme("/fhir/x:y"));
    EXPECT_FALSE(HasScheme(":x"));
    EXPECT_FALSE(HasScheme("1a:x"));
    EXPECT_FALSE(HasScheme(""));
}

TEST(QueryValue, EncodesAllButUnreservedCharacters) {
    EXPECT_EQ(QueryValue("https://x.example/id|a-1_b.c~"),
              "https%3A%2F%2Fx.example%2Fid%7Ca-1_b.c~");
    EXPECT_EQ(QueryValue("a&_count=1#x+y z"), "a%26_count%3D1%23x%2By%20z");
}

TEST(IsAtOrBelow, ComparesWholeOriginsAndWholeSegments) {
    const std::string base = "https://ehr.example/fhir";
    EXPECT_TRUE(IsAtOrBelow("https://ehr.example/fhir", base));
    EXPECT_TRUE(IsAtOrBelow("https://ehr.example/fhir/Patient/1", base));
    EXPECT_TRUE(IsAtOrBelow("https://ehr.example/fhir?_getpages=1", base));
    EXPECT_TRUE(IsAtOrBelow("https://ehr.example/fhir/x", base + "/"));
    EXPECT_FALSE(IsAtOrBelow("https://ehr.example/fhirx", base));
    EXPECT_FALSE(IsAtOrBelow("https://ehr.example/admin", base));
    EXPECT_FALSE(IsAtOrBelow("http://ehr.example/fhir", base));
    EXPECT_FALSE(IsAtOrBelow("https://ehr.example:8443/fhir", base));
    EXPECT_FALSE(IsAtOrBelow("https://ehr.example.evil/fhir", base));
    EXPECT_TRUE(IsAtOrBelow("https://ehr.example/x", "https://ehr.example"));
    EXPECT_FALSE(IsAtOrBelow("https://ehr.example.evil/x", "https://ehr.example"));
    EXPECT_FALSE(IsAtOrBelow("https://ehr.example:1/x", "https://ehr.example"));
    EXPECT_FALSE(IsAllowed("https://ehr.example/fhir", {}));
    EXPECT_TRUE(IsAllowed("https://cb/x/1", {"https://a/b", "https://cb/x"}));
}

}  // namespace
}  // namespace microcare::adapter
