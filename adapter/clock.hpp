#pragma once

#include <chrono>
#include <functional>

namespace microcare::adapter {

using Clock = std::chrono::system_clock;
using TimePoint = std::chrono::sys_time<std::chrono::milliseconds>;

// The wall clock as a seam: what decides by the time (leases, job ages and deadlines, the
// `now` an assessment is made at) reads it through one of these, so that tests set the time
// instead of sleeping. Waiting (timers) stays on the real clocks.
using WallClock = std::function<TimePoint()>;

inline TimePoint SystemNow() { return std::chrono::floor<std::chrono::milliseconds>(Clock::now()); }

}  // namespace microcare::adapter
