#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/store/job_store.hpp"

namespace microcare::adapter::detail {

// What every store writes the same way, whatever its SQL: times as milliseconds since the
// epoch (UTC; the store never reads a clock of its own, so tests and replicas agree on time
// through the callers), states by name (readable in an admin's SQL shell), and an admin note's
// fields as one JSON object of strings.

inline std::int64_t Millis(TimePoint time) { return time.time_since_epoch().count(); }
inline TimePoint FromMillis(std::int64_t millis) {
    return TimePoint(std::chrono::milliseconds(millis));
}

std::optional<JobState> StateFromText(std::string_view text);

std::string EncodeNoteFields(const AdminNote& note);
// Fills note.fields from EncodeNoteFields' text; false when it is not that.
bool DecodeNoteFields(const std::string& text, AdminNote& note);

// The `jobs` and `count` fields RetryJobs adds to its note.
void AddRetriedFields(const std::vector<std::int64_t>& retried, AdminNote& note);

// SQL both stores run verbatim (plain SQL both dialects read alike); parameters are numbered
// ($n in PostgreSQL, ?n in SQLite: see the store).
inline constexpr std::string_view kJobColumns =
    "id, trigger_key, encounter, kind, payload, state, attempts, created_at, updated_at, "
    "next_attempt_at, lease_until, last_error, outcome";

}  // namespace microcare::adapter::detail
