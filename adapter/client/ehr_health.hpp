#pragma once

#include <boost/system/error_code.hpp>
#include <mutex>
#include <optional>
#include <string_view>

#include "adapter/clock.hpp"

namespace microcare::adapter {

// Whether the EHR answers, learnt from the exchanges MicroCare really makes rather than from a
// probe of its own: a refused connection, a timeout, a failed TLS handshake or a 5xx marks it
// unreachable; any other answer marks it reachable again. Until the first exchange it is
// unknown, which counts as up: there is no evidence of an outage. /readyz and /metrics read
// it. Thread-safe.
class EhrHealth {
public:
    enum class State { kUnknown, kReachable, kUnreachable };
    struct Reading {
        State state = State::kUnknown;
        // The time of the last exchange that got an answer below 500.
        std::optional<TimePoint> last_success;

        bool up() const { return state != State::kUnreachable; }
    };

    explicit EhrHealth(WallClock now = SystemNow);

    // The EHR answered with this status.
    void NoteAnswer(unsigned status);
    // A request got no answer: the HTTP or FHIR client's error.
    void NoteFailure(const boost::system::error_code& error);

    Reading Read() const;

private:
    WallClock now_;
    mutable std::mutex mutex_;
    Reading reading_;
};

// "unknown", "reachable", "unreachable": what /readyz says.
std::string_view ToString(EhrHealth::State state);

}  // namespace microcare::adapter
