#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace microcare::fhir {

// A point in time, UTC, to the millisecond.
using Instant = std::chrono::sys_time<std::chrono::milliseconds>;

enum class DatePrecision { kYear, kMonth, kDay, kSecond };

// A FHIR `date`, `dateTime` or `instant`: possibly partial (`2024`, `2024-05`), possibly
// without an offset (a date, or a time some servers send without one). A partial value stands
// for the whole period it names: Earliest() and Latest() give its bounds. Values without an
// offset are read in the offset the caller supplies (the encounter's).
class DateTime {
public:
    // Parses the FHIR lexical form; nullopt if it is not one.
    static std::optional<DateTime> Parse(std::string_view text);
    static DateTime FromInstant(Instant instant, int offset_minutes);

    DatePrecision precision() const { return precision_; }
    std::optional<int> offset_minutes() const { return offset_minutes_; }

    Instant Earliest(int default_offset_minutes = 0) const;
    Instant Latest(int default_offset_minutes = 0) const;

    // The canonical FHIR text: the precision as parsed, milliseconds when non-zero.
    std::string ToString() const;

private:
    int year_ = 1970, month_ = 1, day_ = 1, hour_ = 0, minute_ = 0, second_ = 0, millis_ = 0;
    DatePrecision precision_ = DatePrecision::kYear;
    std::optional<int> offset_minutes_;
};

// A calendar duration such as `P6M`, `P4W`, `P10D`, `P1Y2M`, `PT48H`, `P0D`. Month and year
// steps are calendar steps: 31 January + P1M is the last day of February.
struct CalendarDuration {
    int years = 0;
    int months = 0;
    int weeks = 0;
    int days = 0;
    int hours = 0;
    int minutes = 0;
    int seconds = 0;

    static std::optional<CalendarDuration> Parse(std::string_view text);
    std::string ToString() const;
    bool operator==(const CalendarDuration&) const = default;
};

// `instant` moved by `duration` (forwards when sign > 0, backwards otherwise) on the calendar of
// the given UTC offset.
Instant AddCalendar(Instant instant, const CalendarDuration& duration, int sign,
                    int offset_minutes);

// RFC 3339 text of an instant in the given offset, to the second ("2026-11-20T10:00:00+01:00").
std::string FormatInstant(Instant instant, int offset_minutes);
// The date part only ("2026-11-20") in the given offset.
std::string FormatDate(Instant instant, int offset_minutes);

}  // namespace microcare::fhir
