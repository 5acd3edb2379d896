#pragma once

#include <atomic>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "adapter/audit/audit_log.hpp"
#include "adapter/client/ehr.hpp"
#include "adapter/client/failure_reason.hpp"
#include "adapter/clock.hpp"
#include "adapter/metrics.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"
#include "rules/rule_set.hpp"

namespace microcare::adapter {

// What became of one attempt at a job.
struct JobResult {
    enum class Kind { kDone, kRetry, kDead };
    Kind kind = Kind::kDone;
    std::string summary;  // safe text: ids, statuses, counts; never patient data
    std::string outcome;  // the EHR's OperationOutcome on a refusal, or the result summary
    std::optional<std::chrono::milliseconds> retry_after;  // the EHR's Retry-After
    FailureReason reason = FailureReason::kOther;          // of a retry: what it met
};

// Leases jobs from the store and carries each one through: read the record from the EHR,
// evaluate the rules, read back what MicroCare wrote for the encounter before, post only the
// difference (updates guarded by If-Match; a conflict re-reads and revises again), check that
// one CarePlan landed. Transient failures
// (transport errors, 5xx, 429) are retried with exponential backoff and jitter that honours
// Retry-After; the EHR's 4xx refusals and jobs past their attempts or age are dead-lettered
// with the reason kept on the job.
class Worker {
public:
    // The pack in force now; called once as each job starts (the service's RulePackInForce).
    using PackSource = std::function<std::shared_ptr<const rules::RuleSet>()>;

    Worker(boost::asio::any_io_executor executor, const WorkerSettings& settings, JobStore& store,
           Ehr& ehr, PackSource rules, Metrics& metrics, AuditLog& audit,
           WallClock now = SystemNow);
    // One pack for the worker's whole life (tests).
    Worker(boost::asio::any_io_executor executor, const WorkerSettings& settings, JobStore& store,
           Ehr& ehr, std::shared_ptr<const rules::RuleSet> rules, Metrics& metrics, AuditLog& audit,
           WallClock now = SystemNow);
    ~Worker();

    // Every write then carries its FHIR AuditEvent in the same transaction, naming `software`
    // ("MicroCare 0.1.0") as the client and the EHR at `ehr_base_url` as the server
    // (audit.fhirAuditEvents). Before Start().
    void PostAuditEvents(std::string software, std::string ehr_base_url);

    void Start();
    // Stops leasing; jobs in flight finish until `grace` is over, the rest are handed back by
    // their leases running out. Returns once every loop has ended.
    boost::asio::awaitable<void> Stop(std::chrono::milliseconds grace);
    // A trigger was journaled: look for work now rather than at the next poll.
    void Wake();

    // Leases one due job and carries it through, recording its outcome in the store; false
    // when none was due. What each loop does once; tests drive the worker with it.
    boost::asio::awaitable<bool> RunOnce();

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace microcare::adapter
