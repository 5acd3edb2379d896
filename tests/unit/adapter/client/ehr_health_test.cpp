// Whether the EHR is reachable is learnt from MicroCare's real exchanges: an ObservedEhr in
// front of an in-memory EHR, a set clock, no sockets.
#include "adapter/client/ehr_health.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <set>

#include "adapter/client/failure_reason.hpp"
#include "adapter/client/observed_ehr.hpp"
#include "tests/unit/adapter/service/in_memory_ehr.hpp"

namespace microcare::adapter {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;

TEST(FailureReason, TransportErrorsAndStatusesHaveOneReasonEach) {
    EXPECT_EQ(ReasonOf(make_error_code(Error::kConnectionFailed)), FailureReason::kConnect);
    EXPECT_EQ(ReasonOf(make_error_code(Error::kTimeout)), FailureReason::kTimeout);
    EXPECT_EQ(ReasonOf(make_error_code(Error::kTlsFailed)), FailureReason::kTls);
    EXPECT_EQ(ReasonOf(make_error_code(Error::kResponseTooLarge)), FailureReason::kBadResponse);
    EXPECT_EQ(ReasonOf(make_error_code(Error::kAuthFailed)), FailureReason::kAuth);
    EXPECT_EQ(ReasonOf(make_error_code(Error::kStoreFailed)), FailureReason::kOther);
    EXPECT_EQ(ReasonOf(503u), FailureReason::kHttp5xx);
    EXPECT_EQ(ReasonOf(429u), FailureReason::kThrottled);
    EXPECT_EQ(ReasonOf(408u), FailureReason::kThrottled);
    // Every reason has a distinct label.
    std::set<std::string_view> labels;
    for (FailureReason reason : kFailureReasons) labels.insert(ToString(reason));
    EXPECT_EQ(labels.size(), kFailureReasons.size());
}

class EhrHealthTest : public ::testing::Test {
protected:
    template <typename T>
    T Run(asio::awaitable<T> call) {
        auto done = asio::co_spawn(io_, std::move(call), asio::use_future);
        io_.restart();
        io_.run();
        return done.get();
    }

    TimePoint now_ = std::chrono::floor<std::chrono::milliseconds>(
        std::chrono::sys_days(std::chrono::year{2026} / 12 / 5) + 9h);
    EhrHealth health_{[this] { return now_; }};
    testing::InMemoryEhr ehr_;
    ObservedEhr observed_{ehr_, health_};
    asio::io_context io_;
};

TEST_F(EhrHealthTest, UnknownUntilTheFirstExchangeAndCountedAsUp) {
    const EhrHealth::Reading reading = health_.Read();
    EXPECT_EQ(reading.state, EhrHealth::State::kUnknown);
    EXPECT_TRUE(reading.up());
    EXPECT_FALSE(reading.last_success);
}

TEST_F(EhrHealthTest, ARefusedConnectionMarksItDownAndTheNextAnswerUpAgain) {
    ehr_.Put(R"({"resourceType":"Patient","id":"p1"})");
    ASSERT_TRUE(Run(observed_.Get("Patient/p1")));
    const TimePoint first_success = now_;
    EXPECT_EQ(health_.Read().state, EhrHealth::State::kReachable);

    now_ += 1h;
    ehr_.unreachable = Error::kConnectionFailed;
    EXPECT_FALSE(Run(observed_.Post("", "{}")));
    EhrHealth::Reading down = health_.Read();
    EXPECT_EQ(down.state, EhrHealth::State::kUnreachable);
    EXPECT_FALSE(down.up());
    EXPECT_EQ(down.last_success, first_success);  // since when it has not answered

    now_ += 1h;
    ehr_.unreachable.reset();
    ASSERT_TRUE(Run(observed_.SearchAll("Patient?_id=p1")));
    EXPECT_EQ(health_.Read().state, EhrHealth::State::kReachable);
    EXPECT_EQ(health_.Read().last_success, now_);
}

TEST_F(EhrHealthTest, TimeoutsAnd5xxMarkItDownA4xxDoesNot) {
    ehr_.unreachable = Error::kTimeout;
    (void)Run(observed_.Get("Patient/p1"));
    EXPECT_EQ(health_.Read().state, EhrHealth::State::kUnreachable);

    ehr_.unreachable.reset();
    (void)Run(observed_.Get("Patient/missing"));  // 404: it answered
    EXPECT_EQ(health_.Read().state, EhrHealth::State::kReachable);

    HttpResponse unavailable;
    unavailable.status = 503;
    ehr_.outage = unavailable;
    (void)Run(observed_.Get("Patient/p1"));
    EXPECT_EQ(health_.Read().state, EhrHealth::State::kUnreachable);
}

TEST_F(EhrHealthTest, AnUnreadableAnswerSaysNothingAboutReachability) {
    health_.NoteAnswer(200);
    health_.NoteFailure(make_error_code(Error::kBadResponse));
    EXPECT_EQ(health_.Read().state, EhrHealth::State::kReachable);
}

}  // namespace
}  // namespace microcare::adapter
