#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "adapter/client/failure_reason.hpp"
#include "adapter/server/http_server_stats.hpp"
#include "rules/pack_identity.hpp"

namespace microcare::adapter {

// What /metrics reads from the running service when the page is served, beside the counters:
// the store's job counts, the rule pack in force (an info metric: value 1, the identity in its
// labels), the HTTP edge's own counts and whether the EHR answers.
struct LiveReadings {
    std::uint64_t queued = 0;
    std::uint64_t running = 0;
    std::uint64_t dead = 0;
    // How long the oldest job not yet done or dead has waited since its trigger (0: none).
    std::uint64_t oldest_waiting_seconds = 0;
    bool ehr_up = true;  // EhrHealth: false only once an exchange found the EHR unreachable
    rules::PackIdentity pack;
    HttpServerStats edge;
};

// The service's counters, exposed at /metrics in the Prometheus text format.
struct Metrics {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> requests_refused{0};  // 4xx answers
    std::atomic<std::uint64_t> triggers_accepted{0};
    std::atomic<std::uint64_t> triggers_duplicate{0};
    std::atomic<std::uint64_t> subscription_gaps{0};
    std::atomic<std::uint64_t> jobs_done{0};
    // Attempts scheduled again, by what they met (FailureReason); the total is their sum.
    std::array<std::atomic<std::uint64_t>, kFailureReasons.size()> jobs_retried{};
    std::atomic<std::uint64_t> jobs_dead{0};
    std::atomic<std::uint64_t> ehr_requests{0};
    std::atomic<std::uint64_t> ehr_failures{0};
    std::atomic<std::uint64_t> findings_absolute{0};
    std::atomic<std::uint64_t> findings_relative{0};
    std::atomic<std::uint64_t> tasks_failed{0};     // background coroutines ended by an exception
    std::atomic<std::uint64_t> audit_failures{0};   // records the trail could not take
    std::atomic<std::uint64_t> reloads_applied{0};  // SIGHUP or /admin/reload put in force
    std::atomic<std::uint64_t> reloads_refused{0};  // ... refused (or not auditable)
    // Polling the EHR's search API (adapter/poll/).
    std::atomic<std::uint64_t> polls{0};
    std::atomic<std::uint64_t> poll_failures{0};
    std::atomic<std::uint64_t> poll_requests{0};  // search pages asked for
    std::atomic<std::uint64_t> poll_encounters_queued{0};
    std::atomic<std::uint64_t> poll_encounters_seen{0};      // re-read in the overlap window
    std::atomic<std::uint64_t> poll_encounters_skipped{0};   // not microneedling
    std::atomic<std::uint64_t> poll_appointments_queued{0};  // screening jobs
    std::atomic<std::uint64_t> poll_appointments_seen{0};
    std::atomic<std::uint64_t> poll_appointments_skipped{0};  // not microneedling, or a status
                                                              // not screened

    void CountRetry(FailureReason reason) { ++jobs_retried[static_cast<std::size_t>(reason)]; }
    std::uint64_t JobsRetried() const;

    std::string Prometheus(const LiveReadings& live) const;
};

}  // namespace microcare::adapter
