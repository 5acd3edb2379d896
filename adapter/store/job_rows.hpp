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

// RetryJobs on top of a store's own Retry (done or dead → queued) and note insert: the ids
// retried, the others left, and the note (with AddRetriedFields) only when something changed.
template <typename RetryOne, typename InsertNote>
Result<std::vector<std::int64_t>> RetryEach(const std::vector<std::int64_t>& ids, AdminNote& note,
                                            RetryOne retry, InsertNote insert_note) {
    std::vector<std::int64_t> retried;
    for (std::int64_t id : ids) {
        Result<void> done = retry(id);
        if (done) {
            retried.push_back(id);
        } else if (done.error() != Error::kConflict && done.error() != Error::kNotFound) {
            return done.error();
        }
    }
    if (retried.empty()) {
        return retried;  // nothing changed: nothing to record
    }
    AddRetriedFields(retried, note);
    if (Result<void> noted = insert_note(note); !noted) {
        return noted.error();
    }
    return retried;
}

// The triggers of a poll page enqueued one by one (each new job's note committed with it, as
// Enqueue does); the store moves the cursor after. Runs as one task, so one savepoint: a failure
// anywhere undoes the page's jobs, notes and cursor together.
template <typename EnqueueOne>
Result<std::vector<Enqueued>> EnqueuePage(const PollPage& page, EnqueueOne enqueue) {
    std::vector<Enqueued> out;
    out.reserve(page.triggers.size());
    for (const NewJob& trigger : page.triggers) {
        Result<Enqueued> enqueued = enqueue(trigger);
        if (!enqueued) {
            return enqueued.error();
        }
        out.push_back(*enqueued);
    }
    return out;
}

// A new job's trigger record (NewJob::note) as the store commits it with the job: with `job`,
// the id the job got. Only for a job just created: a known trigger commits none.
inline AdminNote NoteOfNewJob(const AdminNote& note, std::int64_t job_id) {
    AdminNote with_job = note;
    with_job.fields.emplace_back("job", std::to_string(job_id));
    return with_job;
}

// SQL both stores run verbatim (plain SQL both dialects read alike); parameters are numbered
// ($n in PostgreSQL, ?n in SQLite: see the store).
inline constexpr std::string_view kJobColumns =
    "id, trigger_key, encounter, kind, payload, state, attempts, created_at, updated_at, "
    "next_attempt_at, lease_until, last_error, outcome";

}  // namespace microcare::adapter::detail
