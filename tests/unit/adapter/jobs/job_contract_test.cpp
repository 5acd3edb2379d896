#include "adapter/jobs/job_contract.hpp"

#include <gtest/gtest.h>

namespace microcare::adapter {
namespace {

TEST(JobContract, PayloadsReadBackAsWritten) {
    JobPayload payload;
    payload.encounter = "Encounter/e1";
    payload.respond_to = "https://ehr.example/messaging";
    payload.response = R"({"resourceType":"Bundle"})";
    payload.subscription = "Subscription/s1";
    payload.from_event = 3;
    payload.to_event = 9;
    auto back = JobPayload::FromJson(payload.ToJson());
    ASSERT_TRUE(back);
    EXPECT_EQ(back->encounter, payload.encounter);
    EXPECT_EQ(back->respond_to, payload.respond_to);
    EXPECT_EQ(back->response, payload.response);
    EXPECT_EQ(back->subscription, payload.subscription);
    EXPECT_EQ(back->from_event, 3);
    EXPECT_EQ(back->to_event, 9);
    EXPECT_FALSE(JobPayload::FromJson("[1]"));
}

// A re-screen is a normal assessment, one per encounter and pack.
TEST(JobContract, AReplayIsAnAssessmentKeyedByEncounterAndPack) {
    NewJob job = ReplayJob("Encounter/e1", "abc");
    EXPECT_EQ(job.kind, kJobAssess);
    EXPECT_EQ(job.encounter, "Encounter/e1");
    EXPECT_EQ(JobPayload::FromJson(job.payload)->encounter, "Encounter/e1");
    EXPECT_EQ(job.trigger_key, ReplayJob("Encounter/e1", "abc").trigger_key);
    EXPECT_NE(job.trigger_key, ReplayJob("Encounter/e1", "abd").trigger_key);
    EXPECT_NE(job.trigger_key, ReplayJob("Encounter/e2", "abc").trigger_key);
}

// A replayed event must find the job its first notification made: both are built here.
TEST(JobContract, AnEventHasOneKeyWhetherNotifiedOrReplayed) {
    NewJob notified = SubscriptionEventJob("Subscription/s1", 7, "Encounter/e1");
    NewJob replayed = SubscriptionEventJob("Subscription/s1", 7, "Encounter/e1");
    EXPECT_EQ(notified.trigger_key, replayed.trigger_key);
    EXPECT_NE(notified.trigger_key,
              SubscriptionEventJob("Subscription/s1", 8, "Encounter/e1").trigger_key);
    EXPECT_NE(notified.trigger_key,
              SubscriptionEventJob("Subscription/s2", 7, "Encounter/e1").trigger_key);
    ASSERT_TRUE(notified.subscription_event);
    EXPECT_EQ(notified.subscription_event->event_number, 7);
    EXPECT_EQ(notified.kind, kJobAssess);
    EXPECT_EQ(notified.encounter, "Encounter/e1");
}

TEST(JobContract, AMessageJobCarriesItsResponseOnlyWhenAsynchronous) {
    const MessageRecord message{"msg-1", "hdr-1", R"({"resourceType":"Bundle"})"};
    NewJob sync = MessageJob(message, "Encounter/e1", "");
    EXPECT_EQ(sync.trigger_key, "message:msg-1");
    EXPECT_TRUE(JobPayload::FromJson(sync.payload)->response.empty());
    NewJob async = MessageJob(message, "Encounter/e1", "https://ehr.example/messaging");
    EXPECT_EQ(JobPayload::FromJson(async.payload)->response, message.response);

    Job assessed;
    assessed.trigger_key = async.trigger_key;
    NewJob respond = RespondJob(assessed, *JobPayload::FromJson(async.payload));
    EXPECT_EQ(respond.kind, kJobRespond);
    EXPECT_EQ(respond.trigger_key, "respond:message:msg-1");
    EXPECT_EQ(JobPayload::FromJson(respond.payload)->respond_to, "https://ehr.example/messaging");
}

TEST(JobContract, RecoveryJobsAreKeyedByTheirRange) {
    NewJob a = RecoverJob("Subscription/s1", 3, 5, std::nullopt);
    EXPECT_EQ(a.kind, kJobRecover);
    EXPECT_EQ(a.trigger_key, RecoverJob("Subscription/s1", 3, 5, std::nullopt).trigger_key);
    EXPECT_NE(a.trigger_key, RecoverJob("Subscription/s1", 3, 6, std::nullopt).trigger_key);
    EXPECT_FALSE(a.subscription_event);
}

}  // namespace
}  // namespace microcare::adapter
