#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "adapter/client/ehr.hpp"
#include "adapter/clock.hpp"
#include "adapter/error.hpp"
#include "adapter/metrics.hpp"
#include "adapter/poll/poll_health.hpp"
#include "adapter/poll/poll_settings.hpp"
#include "adapter/store/job_store.hpp"
#include "rules/rule_set.hpp"

namespace microcare::adapter {

// What one poll did: what a test asserts and what the log line says (counts only).
struct PollReport {
    std::size_t requests = 0;      // pages asked of the EHR (Encounters, Procedures, Appointments)
    std::size_t encounters = 0;    // Encounters on those pages (overlap re-reads included)
    std::size_t appointments = 0;  // Appointments on those pages (both searches)
    std::size_t queued = 0;        // new jobs (assessments and screenings)
    std::size_t screenings = 0;    // of which screenings of appointments
    std::size_t seen = 0;          // versions already journaled (the overlap window)
    std::size_t skipped = 0;       // not microneedling, or an appointment status not screened
    bool more = false;             // a search stopped at max_pages with a `next` link left
    bool rescreened = false;       // the periodic re-screening ran
    PollCursor cursor;             // where the encounter poll stands afterwards
};

// Pulls from an EHR that offers only its search API (DESIGN.md, inbound channel 4): finished
// encounters, and with `poll.appointments` the microneedling appointments booked in the horizon
// (pre-visit screening). Each poll searches from the cursor less the overlap window, follows
// `next` links (each checked to stay under the EHR's base), and for each page journals one job
// per microneedling encounter (or appointment) version not seen before, together with the
// cursor and the jobs' audit records, before it reads the next page: a crash re-reads a page,
// never skips one, and the trigger keys make the re-read harmless. What is not microneedling
// (by the pack's own recognition, as the worker applies it) is counted and skipped. Every
// `rescreenEveryMs` every booked appointment in the horizon is screened again, so that a
// change of the patient's record reaches the screening before the visit.
class EhrPoller {
public:
    using PackSource = std::function<std::shared_ptr<const rules::RuleSet>()>;
    static constexpr std::string_view kPollName = kEncounterPollName;

    // `ehr_base_url`: the configured base, which `next` links must stay under. `journaled`
    // runs (on the blocking pool) after each page that queued jobs: the service writes the
    // jobs' audit records into the trail and wakes the worker.
    EhrPoller(boost::asio::any_io_executor executor, const PollSettings& settings,
              std::string ehr_base_url, Ehr& ehr, JobStore& store, PackSource rules,
              Metrics& metrics, boost::asio::thread_pool& blocking, PollHealth& health,
              WallClock now = SystemNow, std::function<void()> journaled = {});

    // One poll, every page of it up to max_pages. An error leaves the cursor where the last
    // journaled page put it.
    boost::asio::awaitable<Result<PollReport>> PollOnce();

    // One poll as Run() makes it: PollOnce, then its outcome recorded in PollHealth, the
    // metrics and the log. Returns how long to wait before the next one (NextDelay).
    boost::asio::awaitable<std::chrono::milliseconds> PollAndRecord();

    // Polls every interval until Stop(); after a failure, sooner or later by NextDelay.
    boost::asio::awaitable<void> Run();
    // Thread-safe; the poll in flight ends after its current page.
    void Stop();
    // Where Run() must be spawned: the strand the poller's timer lives on.
    const boost::asio::any_io_executor& executor() const { return executor_; }

    // How long to wait before the next poll, `failures` polls in a row having failed: the
    // interval when none did, else backoff_initial doubled for each further failure, capped at
    // backoff_max.
    std::chrono::milliseconds NextDelay(int failures) const;

private:
    enum class Target { kEncounters, kAppointments };
    // The searches of one poll: encounters, appointments changed, the re-screening when due.
    boost::asio::awaitable<Result<void>> PollEncounters(const rules::RuleSet& pack,
                                                        PollReport& report);
    boost::asio::awaitable<Result<void>> PollAppointments(const rules::RuleSet& pack,
                                                          PollReport& report);
    // Reads `url` and its `next` pages (up to max_pages), journaling each page's jobs with
    // `cursor` (moved to the page's latest `_lastUpdated` where `advance`). `rescreen`: the key
    // of a re-screening's jobs, empty for versions. Sets `more` when pages were left.
    boost::asio::awaitable<Result<void>> ReadPages(Target target, const rules::RuleSet& pack,
                                                   std::string url, std::string_view poll,
                                                   PollCursor& cursor, bool advance,
                                                   std::string_view rescreen, PollReport& report,
                                                   bool& more);
    boost::asio::awaitable<Result<PollCursor>> Cursor(std::string_view name);
    // The EHR's clock (the Date of its answer to `metadata`), else ours.
    boost::asio::awaitable<TimePoint> EhrNow();

    boost::asio::any_io_executor executor_;
    const PollSettings settings_;
    const std::string base_url_;
    Ehr& ehr_;
    JobStore& store_;
    PackSource rules_;
    Metrics& metrics_;
    boost::asio::thread_pool& blocking_;
    PollHealth& health_;
    WallClock now_;
    std::function<void()> journaled_;
    boost::asio::steady_timer timer_;
    std::atomic<bool> stopping_{false};
    std::optional<TimePoint> first_start_;   // `since` of the searches starting in this process
    int failures_ = 0;                       // polls failed in a row
    bool catching_up_ = false;               // the last encounter poll stopped at max_pages
    bool appointments_catching_up_ = false;  // the same for appointments
};

}  // namespace microcare::adapter
