#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace microcare::adapter {

// The names the store keeps the polls' cursors under (JobStore::ReadPollCursor): encounters,
// appointments changed, and the last re-screening of every booked appointment.
inline constexpr std::string_view kEncounterPollName = "encounters";
inline constexpr std::string_view kAppointmentPollName = "appointments";
inline constexpr std::string_view kRescreenPollName = "appointments-rescreen";

// The search a poll runs when the configuration names none: finished encounters updated after
// the cursor, oldest first. (The Procedures that make an encounter a microneedling session
// are searched for separately, for the encounters of a page that do not name it themselves.)
inline constexpr std::string_view kDefaultEncounterQuery =
    "Encounter?_lastUpdated=gt{cursor}&status=finished&_sort=_lastUpdated&_count={count}";

// Appointments changed after the cursor whose start is in the horizon (`{today}` and
// `{horizonEnd}` become dates): booked ones are screened, cancelled ones retire their screening,
// so no status is searched for.
inline constexpr std::string_view kDefaultAppointmentQuery =
    "Appointment?_lastUpdated=gt{cursor}&date=ge{today}&date=le{horizonEnd}&_sort=_lastUpdated"
    "&_count={count}";
// Every booked appointment in the horizon, screened again each `rescreenEveryMs`: what changed
// in a patient's record since the last screening (a new prescription) is seen before the visit.
inline constexpr std::string_view kDefaultRescreenQuery =
    "Appointment?status=booked&date=ge{today}&date=le{horizonEnd}&_count={count}";

// The `poll.appointments` section: pre-visit screening of booked microneedling appointments.
struct AppointmentPollSettings {
    bool enabled = false;
    std::string query{kDefaultAppointmentQuery};
    std::string rescreen_query{kDefaultRescreenQuery};
    int horizon_days = 14;
    std::chrono::milliseconds rescreen_every{24 * 3600 * 1000};
};

// The `poll` section: pulling finished encounters from an EHR that offers only its FHIR read
// and search API (config/README.md). Absent: no polling.
struct PollSettings {
    bool enabled = false;
    std::chrono::milliseconds interval{60 * 1000};
    // Relative to the EHR's base URL; `{cursor}` becomes the instant searched after, `{count}`
    // the page size.
    std::string query{kDefaultEncounterQuery};
    std::size_t page_size = 50;
    // Pages read in one poll at most: the load on the EHR per interval is bounded by it; the
    // rest waits for the next poll (the cursor has moved).
    std::size_t max_pages = 20;
    // How far behind its cursor each poll searches again: covers `_lastUpdated` values that
    // are not strictly increasing (coarse, equal, or committed late, or stamped by servers
    // whose clocks differ).
    std::chrono::milliseconds overlap{2 * 60 * 1000};
    // Where the first start begins: nothing updated before it is assessed. Unset: the time of
    // the first start on the EHR's clock (no backfill).
    // (TimePoint of clock.hpp, spelt out: this header reaches files with a Clock of their own.)
    std::optional<std::chrono::sys_time<std::chrono::milliseconds>> since;
    std::chrono::milliseconds backoff_initial{5 * 1000};
    std::chrono::milliseconds backoff_max{5 * 60 * 1000};
    AppointmentPollSettings appointments;
};

}  // namespace microcare::adapter
