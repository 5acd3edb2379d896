#include "adapter/poll/poll_cursor.hpp"

#include <algorithm>
#include <cstdio>

#include "adapter/client/outbound_url.hpp"
#include "fhir/date_time.hpp"

namespace microcare::adapter {
namespace {

void ReplaceAll(std::string& text, std::string_view from, std::string_view to) {
    for (auto at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
        text.replace(at, from.size(), to);
    }
}

}  // namespace

TimePoint SearchAfter(const PollCursor& cursor, std::chrono::milliseconds overlap) {
    return std::max(cursor.floor, cursor.high_water - overlap);
}

std::string PollInstant(TimePoint instant) {
    // DateTime::ToString would drop a zero fraction.
    const auto seconds = std::chrono::floor<std::chrono::seconds>(instant);
    char fraction[8];
    std::snprintf(fraction, sizeof fraction, ".%03d",
                  static_cast<int>((instant - seconds).count()));
    // "2026-11-20T10:00:00Z" (or "+00:00") → "2026-11-20T10:00:00.123Z"
    return fhir::FormatInstant(seconds, 0).substr(0, 19) + fraction + "Z";
}

std::string PollSearch(std::string_view pattern, TimePoint after, std::size_t count) {
    const std::string instant = PollInstant(after);
    std::string search(pattern);
    ReplaceAll(search, "{cursor}", QueryValue(instant));
    ReplaceAll(search, "{count}", std::to_string(count));
    return search;
}

std::string HorizonSearch(std::string_view pattern, TimePoint today, int horizon_days,
                          TimePoint after, std::size_t count) {
    const auto date = [](TimePoint day) { return fhir::FormatInstant(day, 0).substr(0, 10); };
    std::string search(pattern);
    ReplaceAll(search, "{today}", date(today));
    ReplaceAll(search, "{horizonEnd}", date(today + std::chrono::days(horizon_days)));
    return PollSearch(search, after, count);
}

}  // namespace microcare::adapter
