// /readyz tells "cannot take triggers" (503) from "the EHR cannot be reached" (degraded, 200:
// triggers are journaled and written back once it returns).
#include "adapter/server/readiness.hpp"

#include <gtest/gtest.h>

namespace microcare::adapter {
namespace {

using namespace std::chrono_literals;

const rules::PackIdentity kPack{"pack", "1.0.0", "abc"};

TEST(Readiness, ReadyWhileTheEhrAnswers) {
    Readiness readiness{true, {EhrHealth::State::kReachable, TimePoint(1000ms)}};
    EXPECT_EQ(readiness.HttpStatus(), 200u);
    EXPECT_EQ(
        ReadinessJson(readiness, kPack),
        R"({"status":"ready","rulePack":{"id":"pack","version":"1.0.0","sha256":"abc"},)"
        R"("auditTrail":"writable","ehr":"reachable","ehrLastSuccess":"1970-01-01T00:00:01Z"})");
}

TEST(Readiness, AnUnreachableEhrDegradesTheServiceButItStillTakesTriggers) {
    Readiness readiness{true, {EhrHealth::State::kUnreachable, TimePoint(1000ms)}};
    EXPECT_EQ(readiness.HttpStatus(), 200u);
    const std::string body = ReadinessJson(readiness, kPack);
    EXPECT_TRUE(body.starts_with(R"({"status":"degraded",)")) << body;
    EXPECT_NE(body.find(R"("ehr":"unreachable","ehrLastSuccess":"1970-01-01T00:00:01Z")"),
              std::string::npos)
        << body;
}

TEST(Readiness, BeforeAnyExchangeTheEhrIsUnknownAndTheServiceReady) {
    Readiness readiness{true, {}};
    const std::string body = ReadinessJson(readiness, kPack);
    EXPECT_TRUE(body.starts_with(R"({"status":"ready",)")) << body;
    EXPECT_NE(body.find(R"("ehr":"unknown"})"), std::string::npos) << body;
}

TEST(Readiness, AServiceThatCannotTakeTriggersIsNotReadyWhateverTheEhr) {
    Readiness readiness{false, {EhrHealth::State::kUnreachable, std::nullopt}};
    EXPECT_EQ(readiness.HttpStatus(), 503u);
    EXPECT_TRUE(ReadinessJson(readiness, kPack).starts_with(R"({"status":"not ready",)"));
}

TEST(Readiness, AFailingAuditTrailIsNamed) {
    Readiness readiness{false, {}, false};
    EXPECT_EQ(readiness.HttpStatus(), 503u);
    EXPECT_NE(ReadinessJson(readiness, kPack).find(R"("auditTrail":"failing")"), std::string::npos);
}

}  // namespace
}  // namespace microcare::adapter
