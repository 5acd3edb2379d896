#include "adapter/server/inbound.hpp"

#include <gtest/gtest.h>

namespace microcare::adapter {
namespace {

const fhir::Instant kNow = fhir::DateTime::Parse("2026-11-24T12:00:00Z")->Earliest();

fhir::JsonDocument Doc(const std::string& text) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(text, issues);
    EXPECT_TRUE(doc) << text;
    return std::move(*doc);
}

const std::string kMessage = R"({
  "resourceType": "Bundle", "id": "msg-1", "type": "message", "timestamp": "2026-11-20T10:05:00Z",
  "entry": [
    {"fullUrl": "urn:uuid:7f6a3c2e-1d2b-4c1a-9a7e-000000000001",
     "resource": {"resourceType": "MessageHeader", "id": "hdr-1",
       "eventCoding": {"system": "http://example.org/events", "code": "encounter-end"},
       "source": {"endpoint": "https://ehr.example/messaging"},
       "focus": [{"reference": "urn:uuid:7f6a3c2e-1d2b-4c1a-9a7e-000000000002"}]}},
    {"fullUrl": "urn:uuid:7f6a3c2e-1d2b-4c1a-9a7e-000000000002",
     "resource": {"resourceType": "Encounter", "id": "enc-9", "status": "finished"}}
  ]})";

TEST(ProcessMessage, MessageBecomesAJobAndAnOkResponse) {
    auto doc = Doc(kMessage);
    fhir::IssueList issues;
    auto trigger = ParseProcessMessage(doc.Root(), {"urn:microcare", false, "", {}}, kNow, issues);
    ASSERT_TRUE(trigger) << fhir::FormatIssue(issues.issues().at(0));
    EXPECT_FALSE(trigger->fatal);
    EXPECT_EQ(trigger->job.encounter, "Encounter/enc-9");
    EXPECT_EQ(trigger->job.trigger_key, "message:msg-1");
    ASSERT_TRUE(trigger->job.message);
    EXPECT_EQ(trigger->job.message->header_id, "hdr-1");
    auto response = Doc(trigger->response);
    fhir::Node header = response.Root()["entry"][0]["resource"];
    EXPECT_EQ(response.Root()["type"].String(), "message");
    EXPECT_EQ(header["response"]["identifier"].String(), "hdr-1");
    EXPECT_EQ(header["response"]["code"].String(), "ok");
    EXPECT_EQ(header["destination"][0]["endpoint"].String(), "https://ehr.example/messaging");
    EXPECT_EQ(JobPayload::FromJson(trigger->job.payload)->encounter, "Encounter/enc-9");
}

TEST(ProcessMessage, ResponseIsTheSameForTheSameMessage) {
    auto doc = Doc(kMessage);
    fhir::IssueList issues;
    auto a = ParseProcessMessage(doc.Root(), {"urn:microcare", false, "", {}}, kNow, issues);
    auto b = ParseProcessMessage(doc.Root(), {"urn:microcare", false, "", {}}, kNow, issues);
    EXPECT_EQ(a->response, b->response);
}

TEST(ProcessMessage, AsyncMessagesNeedSomewhereToAnswer) {
    auto doc = Doc(kMessage);
    fhir::IssueList issues;
    const std::vector<std::string> allowed = {"https://ehr.example/messaging", "https://cb/x"};
    auto trigger =
        ParseProcessMessage(doc.Root(), {"urn:microcare", true, "", allowed}, kNow, issues);
    ASSERT_TRUE(trigger);
    EXPECT_EQ(JobPayload::FromJson(trigger->job.payload)->respond_to,
              "https://ehr.example/messaging");
    auto explicit_url = ParseProcessMessage(
        doc.Root(), {"urn:microcare", true, "https://CB:443/x/./y", allowed}, kNow, issues);
    ASSERT_TRUE(explicit_url);
    EXPECT_EQ(JobPayload::FromJson(explicit_url->job.payload)->respond_to, "https://cb/x/y");
}

// Issue 7, item 2: response-url and source.endpoint chose where MicroCare POSTs, with the
// EHR's credentials.
TEST(ProcessMessage, ResponseUrlsOutsideTheConfiguredOnesAreRefused) {
    auto doc = Doc(kMessage);
    const std::vector<std::string> allowed = {"https://ehr.example/fhir"};
    struct Case {
        std::string url;
        std::string code;
    };
    for (const Case& c : std::vector<Case>{
             {"https://evil.example/x", "forbidden"},
             {"https://ehr.example/admin/reset", "forbidden"},
             {"https://ehr.example/fhir/../admin/reset", "forbidden"},
             {"https://ehr.example/fhir/%2e%2e/admin", "forbidden"},
             {"https://ehr.example/fhirx", "forbidden"},
             {"https://ehr.example.evil/fhir", "forbidden"},
             {"https://ehr.example:8443/fhir", "forbidden"},
             {"http://ehr.example/fhir", "forbidden"},
             {"https://user@ehr.example/fhir", "required"},
             {"file:///etc/passwd", "required"},
             {"gopher://ehr.example/fhir", "required"},
             {"/fhir/x", "required"},
             {"https://ehr.example/../../x", "required"},
         }) {
        fhir::IssueList issues;
        EXPECT_FALSE(
            ParseProcessMessage(doc.Root(), {"urn:microcare", true, c.url, allowed}, kNow, issues))
            << c.url;
        ASSERT_EQ(issues.size(), 1u) << c.url;
        EXPECT_EQ(issues.issues()[0].path, "response-url") << c.url;
        EXPECT_EQ(issues.issues()[0].code, c.code) << c.url;
    }
    // No allowed URLs configured: no asynchronous responses at all, not even to the sender.
    fhir::IssueList issues;
    EXPECT_FALSE(ParseProcessMessage(doc.Root(), {"urn:microcare", true, "", {}}, kNow, issues));
    EXPECT_EQ(issues.issues().at(0).path, "Bundle.entry[0].resource.source.endpoint");
    fhir::IssueList below;
    EXPECT_TRUE(ParseProcessMessage(
        doc.Root(), {"urn:microcare", true, "https://ehr.example/fhir/$process-message", allowed},
        kNow, below));
}

TEST(ProcessMessage, StructuralProblemsAreReportedWithPaths) {
    struct Case {
        std::string body;
        std::string path;
    };
    std::vector<Case> cases = {
        {R"({"resourceType": "Patient"})", "resourceType"},
        {R"({"resourceType": "Bundle", "id": "m", "type": "message", "entry": [{"resource": {"resourceType": "Encounter"}}]})",
         "Bundle.entry[0].resource"},
        {R"({"resourceType": "Bundle", "type": "message", "entry": [{"resource": {"resourceType": "MessageHeader", "id": "h", "eventUri": "x", "focus": [{"reference": "Encounter/1"}]}}]})",
         "Bundle.id"},
        {R"({"resourceType": "Bundle", "id": "m", "type": "message", "entry": [{"resource": {"resourceType": "MessageHeader", "id": "h", "eventUri": "x"}}]})",
         "Bundle.entry[0].resource.focus"},
        {R"({"resourceType": "Bundle", "id": "m", "type": "collection", "entry": [{"resource": {"resourceType": "MessageHeader", "id": "h", "eventUri": "x", "focus": [{"reference": "Encounter/1"}]}}]})",
         "Bundle.type"},
    };
    for (const Case& c : cases) {
        auto doc = Doc(c.body);
        fhir::IssueList issues;
        EXPECT_FALSE(
            ParseProcessMessage(doc.Root(), {"urn:microcare", false, "", {}}, kNow, issues));
        bool seen = false;
        for (const fhir::Issue& issue : issues) seen = seen || issue.path == c.path;
        EXPECT_TRUE(seen) << c.path << " in " << c.body;
    }
}

TEST(ProcessMessage, AFocusThatIsNotAnEncounterIsAFatalError) {
    auto doc = Doc(R"({"resourceType": "Bundle", "id": "m2", "type": "message", "entry": [
      {"resource": {"resourceType": "MessageHeader", "id": "h2", "eventUri": "x", "focus": [{"reference": "Patient/1"}]}}]})");
    fhir::IssueList issues;
    auto trigger = ParseProcessMessage(doc.Root(), {"urn:microcare", false, "", {}}, kNow, issues);
    ASSERT_TRUE(trigger);
    EXPECT_TRUE(trigger->fatal);
    auto response = Doc(trigger->response);
    EXPECT_EQ(response.Root()["entry"][0]["resource"]["response"]["code"].String(), "fatal-error");
    EXPECT_EQ(response.Root()["entry"][1]["resource"]["resourceType"].String(), "OperationOutcome");
}

// Issue 12: a booking, whose focus is the Appointment (no Encounter exists yet), is screened.
TEST(ProcessMessage, ABookingMessageBecomesAScreeningOfItsAppointment) {
    std::string text = kMessage;
    text.replace(text.find("encounter-end"), 13, "appointment-booked");
    const std::string encounter =
        R"("resourceType": "Encounter", "id": "enc-9", "status": "finished")";
    text.replace(text.find(encounter), encounter.size(),
                 R"("resourceType": "Appointment", "id": "ap-3", "status": "booked")");
    auto doc = Doc(text);
    fhir::IssueList issues;
    auto trigger = ParseProcessMessage(doc.Root(), {"urn:microcare", false, "", {}}, kNow, issues);
    ASSERT_TRUE(trigger) << fhir::FormatIssue(issues.issues().at(0));
    EXPECT_FALSE(trigger->fatal);
    EXPECT_EQ(trigger->job.kind, kJobScreen);
    EXPECT_EQ(trigger->job.encounter, "Appointment/ap-3");
    EXPECT_EQ(JobPayload::FromJson(trigger->job.payload)->appointment, "Appointment/ap-3");
    EXPECT_EQ(trigger->job.trigger_key, "message:msg-1");
}

TEST(ProcessMessage, DotSegmentFocusIsNotAnEncounter) {
    for (const std::string focus :
         {"Encounter/.", "Encounter/..", "urn:uuid:7f6a3c2e-1d2b-4c1a-9a7e-000000000002"}) {
        std::string text = kMessage;
        text.replace(text.find("urn:uuid:7f6a3c2e-1d2b-4c1a-9a7e-000000000002\"}]"),
                     std::string("urn:uuid:7f6a3c2e-1d2b-4c1a-9a7e-000000000002").size(), focus);
        text.replace(text.find("\"enc-9\""), 7, "\"..\"");
        auto doc = Doc(text);
        fhir::IssueList issues;
        auto trigger =
            ParseProcessMessage(doc.Root(), {"urn:microcare", false, "", {}}, kNow, issues);
        ASSERT_TRUE(trigger) << focus;
        EXPECT_TRUE(trigger->fatal) << focus << ": " << trigger->job.encounter;
    }
}

TEST(CapabilityStatement, DeclaresMessagingAndReliableCache) {
    auto doc = Doc(CapabilityStatementJson("/fhir", kNow, {"pack", "1.0.0", "ab12"}));
    EXPECT_EQ(doc.Root()["resourceType"].String(), "CapabilityStatement");
    EXPECT_EQ(doc.Root()["messaging"][0]["endpoint"][0]["address"].String(),
              "/fhir/$process-message");
    EXPECT_TRUE(doc.Root()["messaging"][0]["reliableCache"].IsNumber());
}

TEST(CapabilityStatement, NamesTheRulePackInForce) {
    auto doc = Doc(CapabilityStatementJson("/fhir", kNow, {"pack", "1.0.0", "ab12"}));
    fhir::Node extension = doc.Root()["extension"][0];
    EXPECT_EQ(extension["url"].String(), kRulePackExtension);
    EXPECT_EQ(extension["extension"][2]["url"].String(), "sha256");
    EXPECT_EQ(extension["extension"][2]["valueString"].String(), "ab12");
    EXPECT_EQ(doc.Root()["implementation"]["description"].String(),
              "MicroCare microneedling contraindication and aftercare service; rule pack pack "
              "1.0.0 (sha256 ab12)");
}

}  // namespace
}  // namespace microcare::adapter
