#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace microcare::adapter {

// The name the store keeps the encounter poll's cursor under (JobStore::ReadPollCursor).
inline constexpr std::string_view kEncounterPollName = "encounters";

// The search a poll runs when the configuration names none: finished encounters updated after
// the cursor, oldest first. (The Procedures that make an encounter a microneedling session
// are searched for separately, for the encounters of a page that do not name it themselves.)
inline constexpr std::string_view kDefaultEncounterQuery =
    "Encounter?_lastUpdated=gt{cursor}&status=finished&_sort=_lastUpdated&_count={count}";

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
};

}  // namespace microcare::adapter
