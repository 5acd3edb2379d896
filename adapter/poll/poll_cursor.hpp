#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "adapter/clock.hpp"
#include "adapter/store/job_store.hpp"

namespace microcare::adapter {

// The instant a poll searches after: its high-water mark less the overlap window, but never
// below the floor (the first start's `since`), so that the window does not reach back into
// what was updated before MicroCare was told to look.
TimePoint SearchAfter(const PollCursor& cursor, std::chrono::milliseconds overlap);

// An instant as a poll writes it: UTC, always to the millisecond ("2026-12-01T09:00:00.000Z"),
// so that a server that stores milliseconds never sees a bound coarser than its stamps.
std::string PollInstant(TimePoint instant);

// The configured search with `{cursor}` (the instant, percent-encoded, to the millisecond, in
// UTC) and `{count}` filled in.
std::string PollSearch(std::string_view pattern, TimePoint after, std::size_t count);

// The same with `{today}` (the day of `today`, UTC) and `{horizonEnd}` (`horizon_days` later)
// as dates: the appointments' searches.
std::string HorizonSearch(std::string_view pattern, TimePoint today, int horizon_days,
                          TimePoint after, std::size_t count);

}  // namespace microcare::adapter
