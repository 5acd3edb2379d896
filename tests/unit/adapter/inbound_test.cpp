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

TEST(Notification, R4RestHookWithTheEncounterOrAnEmptyBody) {
    fhir::IssueList issues;
    auto doc = Doc(R"({"resourceType": "Encounter", "id": "e1", "status": "finished"})");
    auto full = ParseNotification(&doc, "", issues);
    ASSERT_TRUE(full);
    EXPECT_EQ(full->type, Notification::Type::kR4Resource);
    EXPECT_EQ(full->r4_encounter, "Encounter/e1");
    auto empty = ParseNotification(nullptr, "Encounter/e2", issues);
    ASSERT_TRUE(empty);
    EXPECT_EQ(empty->r4_encounter, "Encounter/e2");
    EXPECT_FALSE(ParseNotification(nullptr, "", issues));
}

// Issue 7, item 5: dot segments as ids went into EHR URLs (`GET Encounter/.` lists them all).
TEST(Notification, DotSegmentsAreNotEncounterIds) {
    for (const char* named : {"Encounter/.", "Encounter/.."}) {
        fhir::IssueList issues;
        EXPECT_FALSE(ParseNotification(nullptr, named, issues)) << named;
        EXPECT_TRUE(issues.HasErrors());
    }
    fhir::IssueList issues;
    auto doc = Doc(R"({"resourceType": "Encounter", "id": "..", "status": "finished"})");
    EXPECT_FALSE(ParseNotification(&doc, "", issues));
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

TEST(Notification, R4BSubscriptionStatusWithFullAndIdOnlyPayloads) {
    auto doc = Doc(R"({"resourceType": "Bundle", "type": "history", "entry": [
      {"fullUrl": "urn:uuid:0d9a5c32-4c57-4a2e-9c0e-1b2c3d4e5f60",
       "resource": {"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification",
         "eventsSinceSubscriptionStart": "12",
         "notificationEvent": [
           {"eventNumber": "11", "focus": {"reference": "https://ehr.example/fhir/Encounter/e11"}},
           {"eventNumber": "12", "focus": {"reference": "Encounter/e12"}}],
         "subscription": {"reference": "https://ehr.example/fhir/Subscription/s1"},
         "topic": "https://microcare.example/topic/encounter"}},
      {"fullUrl": "https://ehr.example/fhir/Encounter/e11", "resource": {"resourceType": "Encounter", "id": "e11", "status": "finished"}},
      {"fullUrl": "https://ehr.example/fhir/Encounter/e12", "request": {"method": "PUT", "url": "Encounter/e12"}}]})");
    fhir::IssueList issues;
    auto n = ParseNotification(&doc, "", issues);
    ASSERT_TRUE(n) << fhir::FormatIssue(issues.issues().at(0));
    EXPECT_EQ(n->subscription, "Subscription/s1");
    ASSERT_EQ(n->events.size(), 2u);
    EXPECT_EQ(n->events[0].number, 11);
    EXPECT_EQ(n->events[0].encounter, "Encounter/e11");
    EXPECT_EQ(n->events[1].encounter, "Encounter/e12");
    EXPECT_EQ(*n->events_since_start, 12);
}

TEST(Notification, R4BackportParametersHandshakeHeartbeatAndEmptyPayload) {
    auto parameters = [](const std::string& type, const std::string& events) {
        return R"({"resourceType": "Bundle", "type": "history", "entry": [{"resource": {"resourceType": "Parameters", "parameter": [
          {"name": "subscription", "valueReference": {"reference": "Subscription/s2"}},
          {"name": "status", "valueCode": "active"},
          {"name": "type", "valueCode": ")" +
               type + R"("},
          {"name": "events-since-subscription-start", "valueString": "5"})" +
               events + "]}}]}";
    };
    fhir::IssueList issues;
    auto handshake = Doc(parameters("handshake", ""));
    auto h = ParseNotification(&handshake, "", issues);
    ASSERT_TRUE(h);
    EXPECT_EQ(h->type, Notification::Type::kHandshake);
    auto heartbeat = Doc(parameters("heartbeat", ""));
    EXPECT_EQ(ParseNotification(&heartbeat, "", issues)->type, Notification::Type::kHeartbeat);
    auto empty_payload = Doc(parameters(
        "event-notification",
        R"(,{"name": "notification-event", "part": [{"name": "event-number", "valueString": "5"}]})"));
    auto e = ParseNotification(&empty_payload, "", issues);
    ASSERT_TRUE(e);
    ASSERT_EQ(e->events.size(), 1u);
    EXPECT_EQ(e->events[0].number, 5);
    EXPECT_TRUE(e->events[0].encounter.empty());  // the worker must ask the EHR
}

TEST(Notification, WrongShapesAreRefused) {
    fhir::IssueList issues;
    auto patient = Doc(R"({"resourceType": "Patient", "id": "p"})");
    EXPECT_FALSE(ParseNotification(&patient, "", issues));
    auto no_status = Doc(
        R"({"resourceType": "Bundle", "type": "history", "entry": [{"resource": {"resourceType": "Encounter"}}]})");
    EXPECT_FALSE(ParseNotification(&no_status, "", issues));
    auto bad_number = Doc(
        R"({"resourceType": "Bundle", "type": "history", "entry": [{"resource": {"resourceType": "SubscriptionStatus",
      "type": "event-notification", "subscription": {"reference": "Subscription/s"}, "notificationEvent": [{"eventNumber": "x"}]}}]})");
    fhir::IssueList number_issues;
    EXPECT_FALSE(ParseNotification(&bad_number, "", number_issues));
    EXPECT_EQ(number_issues.issues().at(0).path,
              "Bundle.entry[0].resource.notificationEvent[0].eventNumber");
}

// Issue 7, item 2: the subscription reference became the URL of the `$events` replay, sent with
// the EHR's credentials (`../../admin/reset/$events`).
TEST(Notification, TheSubscriptionMustBeASubscriptionReference) {
    for (const char* reference : {"../../admin/reset", "Subscription/..", "https://evil.example/x",
                                  "Patient/p1", "file:///etc/passwd"}) {
        auto doc = Doc(std::string(R"({"resourceType": "Bundle", "type": "history", "entry": [
          {"resource": {"resourceType": "SubscriptionStatus", "type": "heartbeat",
           "subscription": {"reference": ")") +
                       reference + R"("}}}]})");
        fhir::IssueList issues;
        EXPECT_FALSE(ParseNotification(&doc, "", issues)) << reference;
        ASSERT_FALSE(issues.empty());
        EXPECT_EQ(issues.issues()[0].path, "Bundle.entry[0].resource.subscription");
    }
}

TEST(CapabilityStatement, DeclaresMessagingAndReliableCache) {
    auto doc = Doc(CapabilityStatementJson("/fhir", kNow));
    EXPECT_EQ(doc.Root()["resourceType"].String(), "CapabilityStatement");
    EXPECT_EQ(doc.Root()["messaging"][0]["endpoint"][0]["address"].String(),
              "/fhir/$process-message");
    EXPECT_TRUE(doc.Root()["messaging"][0]["reliableCache"].IsNumber());
}

}  // namespace
}  // namespace microcare::adapter
