#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "rules/pack_identity.hpp"

namespace microcare::adapter {

// The service's counters, exposed at /metrics in the Prometheus text format.
struct Metrics {
    std::atomic<std::uint64_t> requests{0};
    std::atomic<std::uint64_t> requests_refused{0};  // 4xx answers
    std::atomic<std::uint64_t> triggers_accepted{0};
    std::atomic<std::uint64_t> triggers_duplicate{0};
    std::atomic<std::uint64_t> subscription_gaps{0};
    std::atomic<std::uint64_t> jobs_done{0};
    std::atomic<std::uint64_t> jobs_retried{0};
    std::atomic<std::uint64_t> jobs_dead{0};
    std::atomic<std::uint64_t> ehr_requests{0};
    std::atomic<std::uint64_t> ehr_failures{0};
    std::atomic<std::uint64_t> findings_absolute{0};
    std::atomic<std::uint64_t> findings_relative{0};
    std::atomic<std::uint64_t> tasks_failed{0};    // background coroutines ended by an exception
    std::atomic<std::uint64_t> audit_failures{0};  // records the trail could not take

    // `queued` and `dead` are read from the store when the page is served; `pack` is the rule
    // pack in force, shown as an info metric (value 1, the identity in its labels).
    std::string Prometheus(std::uint64_t queued, std::uint64_t running, std::uint64_t dead,
                           const rules::PackIdentity& pack) const;
};

}  // namespace microcare::adapter
