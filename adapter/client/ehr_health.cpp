#include "adapter/client/ehr_health.hpp"

#include "adapter/client/failure_reason.hpp"

namespace microcare::adapter {

EhrHealth::EhrHealth(WallClock now) : now_(std::move(now)) {}

void EhrHealth::NoteAnswer(unsigned status) {
    const bool outage = IsOutage(ReasonOf(status));
    // Read outside the lock: a test's clock may take its own.
    const TimePoint now = now_();
    std::lock_guard lock(mutex_);
    if (outage) {
        reading_.state = State::kUnreachable;
        return;
    }
    reading_.state = State::kReachable;
    reading_.last_success = now;
}

void EhrHealth::NoteFailure(const boost::system::error_code& error) {
    // A response that could not be read, or a URL refused before sending, says nothing about
    // whether the EHR can be reached.
    if (!IsOutage(ReasonOf(error))) return;
    std::lock_guard lock(mutex_);
    reading_.state = State::kUnreachable;
}

EhrHealth::Reading EhrHealth::Read() const {
    std::lock_guard lock(mutex_);
    return reading_;
}

std::string_view ToString(EhrHealth::State state) {
    switch (state) {
        case EhrHealth::State::kReachable:
            return "reachable";
        case EhrHealth::State::kUnreachable:
            return "unreachable";
        case EhrHealth::State::kUnknown:
            break;
    }
    return "unknown";
}

}  // namespace microcare::adapter
