#include "adapter/jobs/notification.hpp"

#include <gtest/gtest.h>

namespace microcare::adapter {
namespace {

fhir::JsonDocument Doc(const std::string& text) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(text, issues);
    EXPECT_TRUE(doc.has_value()) << text;
    return std::move(*doc);
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

}  // namespace
}  // namespace microcare::adapter
