#pragma once

#include <mutex>
#include <optional>
#include <string>

#include "adapter/clock.hpp"

namespace microcare::adapter {

// Whether polling the EHR works: a poll that failed (the EHR unreachable, a refused search, an
// answer that is no Bundle, the store) marks it failing until one succeeds. /readyz shows it
// (degraded, still 200: triggers from other channels are still taken) and /metrics counts it.
// Thread-safe.
class PollHealth {
public:
    struct Reading {
        int consecutive_failures = 0;
        std::optional<TimePoint> last_success;
        std::string last_error;  // safe text: an error name, never patient data

        bool failing() const { return consecutive_failures > 0; }
    };

    void NoteSuccess(TimePoint when) {
        std::lock_guard lock(mutex_);
        reading_.consecutive_failures = 0;
        reading_.last_success = when;
        reading_.last_error.clear();
    }
    // Returns how many polls in a row have failed now.
    int NoteFailure(std::string error) {
        std::lock_guard lock(mutex_);
        reading_.last_error = std::move(error);
        return ++reading_.consecutive_failures;
    }
    Reading Read() const {
        std::lock_guard lock(mutex_);
        return reading_;
    }

private:
    mutable std::mutex mutex_;
    Reading reading_;
};

}  // namespace microcare::adapter
