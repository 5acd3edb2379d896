#include "adapter/service/worker.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <random>
#include <variant>

#include "adapter/async_util.hpp"
#include "adapter/audit/audited.hpp"
#include "adapter/client/outbound_url.hpp"
#include "adapter/jobs/job_contract.hpp"
#include "adapter/jobs/notification.hpp"
#include "adapter/log.hpp"
#include "adapter/service/record_fetcher.hpp"
#include "adapter/service/written_before.hpp"
#include "fhir/audit_event.hpp"
#include "rules/plan_revision.hpp"
#include "rules/plan_writer.hpp"
#include "rules/record_assessment.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
using asio::use_awaitable;

JobResult Done(std::string summary) {
    JobResult r;
    r.kind = JobResult::Kind::kDone;
    r.outcome = summary;
    r.summary = std::move(summary);
    return r;
}

JobResult Retry(std::string summary, std::optional<std::chrono::milliseconds> after = {}) {
    JobResult r;
    r.kind = JobResult::Kind::kRetry;
    r.summary = std::move(summary);
    r.retry_after = after;
    return r;
}

JobResult Dead(std::string summary, std::string outcome = {}) {
    JobResult r;
    r.kind = JobResult::Kind::kDead;
    r.summary = std::move(summary);
    r.outcome = std::move(outcome);
    return r;
}

std::string_view ResultName(JobResult::Kind kind) {
    switch (kind) {
        case JobResult::Kind::kDone:
            return "done";
        case JobResult::Kind::kRetry:
            return "retry";
        case JobResult::Kind::kDead:
            break;
    }
    return "dead";
}

JobResult Unaudited(const boost::system::error_code& error) {
    return Retry("the audit trail cannot be written: " + error.message());
}

// The EHR answered with a status: transient ones are retried, the rest are final.
JobResult FromRefusal(const std::string& what, const HttpResponse& response) {
    std::string summary = what + " answered " + std::to_string(response.status);
    if (Classify(response.status) == EhrAnswer::kTransient) {
        JobResult retry = Retry(summary, response.RetryAfter());
        retry.reason = ReasonOf(response.status);
        return retry;
    }
    return Dead(summary, response.body);
}

JobResult FromTransport(const std::string& what, const boost::system::error_code& error) {
    JobResult retry = Retry(what + " failed: " + error.message());
    retry.reason = ReasonOf(error);
    return retry;
}

// What a job writes for: the Encounter assessed or the Appointment screened, and its patient.
struct Treated {
    std::string reference;
    std::string patient;
};

std::string TreatedKind(const Treated& treated) {
    return treated.reference.starts_with("Appointment/") ? "appointment" : "encounter";
}

}  // namespace

struct Worker::Impl : std::enable_shared_from_this<Worker::Impl> {
    Impl(asio::any_io_executor ex, const WorkerSettings& worker_settings, JobStore& job_store,
         Ehr& client, Worker::PackSource rule_set, Metrics& counters, AuditLog& audit_log,
         WallClock wall_clock)
        : io(ex),
          executor(asio::make_strand(ex)),
          Now(std::move(wall_clock)),
          settings(worker_settings),
          store(job_store),
          ehr(client),
          rules(std::move(rule_set)),
          metrics(counters),
          audit(audit_log) {}

    asio::any_io_executor io;
    // Maintenance and Stop's strand; each loop has a strand of its own, so that jobs are
    // assessed on every I/O thread at once (everything they share is thread-safe).
    asio::any_io_executor executor;
    WallClock Now;
    WorkerSettings settings;
    JobStore& store;
    Ehr& ehr;
    Worker::PackSource rules;
    Metrics& metrics;
    AuditLog& audit;
    // Who writes and where, when writes carry their AuditEvents; empty when they don't.
    std::string audit_events_software;
    std::string audit_events_ehr;
    // One timer per loop, on the loop's strand: Wake() cuts every idle wait short.
    std::vector<std::unique_ptr<asio::steady_timer>> timers;
    std::atomic<bool> stopping{false};
    std::atomic<bool> wake_pending{false};
    std::atomic<int> loops{0};
    std::mutex random_mutex;
    std::mt19937_64 random{std::random_device{}()};

    // From any thread: each timer is cancelled on its own loop's strand.
    void WakeAll() {
        for (auto& timer : timers) {
            asio::post(timer->get_executor(),
                       [self = shared_from_this(), timer = timer.get()] { timer->cancel(); });
        }
    }

    asio::awaitable<void> Loop(std::size_t index) {
        auto self = shared_from_this();
        asio::steady_timer& wake = *timers[index];
        ++loops;
        // Counted down however the loop ends: Stop waits for the count, not for its grace.
        struct Running {
            std::atomic<int>& loops;
            ~Running() { --loops; }
        } running{loops};
        while (!stopping) {
            if (co_await LeaseAndRun()) continue;
            wake.expires_after(settings.poll_interval);
            co_await wake.async_wait(asio::as_tuple(use_awaitable));
        }
    }

    // Leases one job and carries it through; false when there was none (or the store failed).
    asio::awaitable<bool> LeaseAndRun() {
        auto leased = co_await AwaitCallback<Result<std::vector<Job>>>([this](auto done) {
            store.LeaseAsync(Now(),
                             std::chrono::duration_cast<std::chrono::milliseconds>(settings.lease),
                             1, std::move(done));
        });
        if (!leased) Log::Error("cannot lease jobs", {{"error", leased.error().message()}});
        if (!leased || leased->empty()) co_return false;
        for (const Job& job : *leased) co_await Run(job);
        co_return true;
    }

    asio::awaitable<void> Maintenance() {
        auto self = shared_from_this();
        asio::steady_timer timer(executor);
        while (!stopping) {
            auto requeued = co_await AwaitCallback<Result<std::size_t>>(
                [this](auto done) { store.RequeueExpiredAsync(Now(), std::move(done)); });
            if (requeued && *requeued > 0) {
                Log::Warning("jobs whose worker stopped were put back in the queue",
                             {{"count", std::to_string(*requeued)}});
            }
            timer.expires_after(std::max<std::chrono::milliseconds>(
                std::chrono::duration_cast<std::chrono::milliseconds>(settings.lease) / 4,
                std::chrono::milliseconds(50)));
            co_await timer.async_wait(asio::as_tuple(use_awaitable));
        }
    }

    asio::awaitable<void> Run(const Job& job) {
        const std::string id = std::to_string(job.id);
        JobResult result = co_await Process(job);
        const TimePoint now = Now();
        const bool too_old = now - job.created_at > settings.max_age;
        if (result.kind == JobResult::Kind::kRetry &&
            ((settings.max_attempts > 0 && job.attempts >= settings.max_attempts) || too_old)) {
            result.kind = JobResult::Kind::kDead;
            result.summary += too_old
                                  ? "; gave up: the job is older than the maximum age"
                                  : "; gave up after " + std::to_string(job.attempts) + " attempts";
        }
        AuditLog::Record record =
            AuditLog::MakeRecord("job", {{"job", id},
                                         {TreatedKind({job.encounter, {}}), job.encounter},
                                         {"attempt", std::to_string(job.attempts)},
                                         {"result", ResultName(result.kind)},
                                         {"summary", result.summary}});
        auto audited = co_await Audited(audit, std::move(record));
        // Nothing ends unaudited: the job stays in the queue until the trail can say how it
        // ended. Its next attempt finds what this one wrote and writes nothing again.
        if (!audited) {
            ++metrics.audit_failures;
            result = Unaudited(audited.error());
        }
        switch (result.kind) {
            case JobResult::Kind::kDone: {
                auto stored = co_await AwaitCallback<Result<void>>([&](auto done) {
                    store.CompleteAsync(job.id, result.outcome, job.attempts, std::move(done));
                });
                NoteStored(stored, id, "cannot record a finished job");
                ++metrics.jobs_done;
                Log::Info("job done",
                          {{"job", id}, {"encounter", job.encounter}, {"result", result.summary}});
                break;
            }
            case JobResult::Kind::kRetry: {
                auto delay = Backoff(job.attempts, result.retry_after);
                auto stored = co_await AwaitCallback<Result<void>>([&](auto done) {
                    store.RetryLaterAsync(job.id, now + delay, result.summary, job.attempts,
                                          std::move(done));
                });
                NoteStored(stored, id, "cannot reschedule a job");
                metrics.CountRetry(result.reason);
                Log::Warning("job will be retried", {{"job", id},
                                                     {"attempt", std::to_string(job.attempts)},
                                                     {"delay_ms", std::to_string(delay.count())},
                                                     {"cause", ToString(result.reason)},
                                                     {"reason", result.summary}});
                break;
            }
            case JobResult::Kind::kDead: {
                auto stored = co_await AwaitCallback<Result<void>>([&](auto done) {
                    store.DeadLetterAsync(job.id, result.summary, result.outcome, job.attempts,
                                          std::move(done));
                });
                NoteStored(stored, id, "cannot dead-letter a job");
                ++metrics.jobs_dead;
                Log::Error("job dead-lettered",
                           {{"job", id}, {"encounter", job.encounter}, {"reason", result.summary}});
                break;
            }
        }
    }

    // A fenced write refused with kConflict means this attempt's lease ran out and another
    // attempt owns the job now: that one will record the outcome.
    static void NoteStored(const Result<void>& stored, const std::string& id,
                           std::string_view what) {
        if (stored) return;
        if (stored.error() == Error::kConflict) {
            Log::Warning("lease lost: a newer attempt owns the job", {{"job", id}});
            return;
        }
        Log::Error(what, {{"job", id}, {"error", stored.error().message()}});
    }

    std::chrono::milliseconds Backoff(int attempts,
                                      std::optional<std::chrono::milliseconds> retry_after) {
        const auto cap = settings.backoff_max;
        auto base = settings.backoff_initial;
        for (int i = 1; i < attempts && base < cap; ++i) base *= 2;
        base = std::min(base, cap);
        std::lock_guard lock(random_mutex);
        // "Equal jitter": at least half the delay, so retries never bunch up at zero.
        std::uniform_int_distribution<long long> jitter(base.count() / 2, base.count());
        std::chrono::milliseconds delay(jitter(random));
        // The EHR's own Retry-After wins over our schedule (bounded: a server's typo must not
        // park a job for days).
        if (retry_after)
            delay = std::max(
                delay, std::min<std::chrono::milliseconds>(*retry_after, std::chrono::hours(1)));
        return delay;
    }

    asio::awaitable<JobResult> Process(const Job& job) {
        auto payload = JobPayload::FromJson(job.payload);
        if (!payload) co_return Dead("the job's payload is unreadable");
        if (job.kind == kJobRecover) co_return co_await Recover(*payload);
        if (job.kind == kJobRespond) co_return co_await Respond(*payload);
        if (job.kind != kJobAssess && job.kind != kJobScreen)
            co_return Dead("unknown job kind " + job.kind);
        // Not a conditional expression: GCC 12 mishandles co_await in one.
        JobResult result;
        if (job.kind == kJobScreen) {
            result = co_await Screen(job, *payload);
        } else {
            result = co_await Assess(job, *payload);
        }
        if (result.kind == JobResult::Kind::kDone && !payload->respond_to.empty()) {
            // Journaled before this job is marked done: a crash in between re-runs the
            // (idempotent) assessment, and the trigger key keeps the response job single.
            NewJob delivery = RespondJob(job, *payload);
            auto queued = co_await AwaitCallback<Result<Enqueued>>(
                [&](auto done) { store.EnqueueAsync(delivery, std::move(done)); });
            if (!queued) co_return Retry("journaling the response message failed");
            result.summary += "; response message queued as job " + std::to_string(queued->job_id);
        }
        co_return result;
    }

    // The response-url was checked against the configuration when the message arrived.
    asio::awaitable<JobResult> Respond(const JobPayload& payload) {
        auto delivered = co_await ehr.Post(payload.respond_to, payload.response);
        if (!delivered)
            co_return FromTransport("delivering the response message", delivered.error());
        if (Classify(delivered->status) != EhrAnswer::kSuccess) {
            co_return FromRefusal("the response-url", *delivered);
        }
        co_return Done("response message delivered");
    }

    // The record of the treatment `reference` (an Encounter, or the Appointment screened) with
    // what MicroCare wrote before for it, read in the record's batch (three round trips fewer);
    // the job's result when it cannot be read.
    asio::awaitable<std::variant<FetchedRecord, JobResult>> Fetch(const std::string& reference,
                                                                  bool care_plan) {
        ++metrics.ehr_requests;
        auto fetched = co_await FetchRecord(
            ehr, reference, [care_plan](std::string_view treated, std::string_view patient) {
                return WrittenBeforeQueries(patient, rules::IdentifierPrefix(treated), care_plan);
            });
        if (!fetched) {
            ++metrics.ehr_failures;
            co_return FromTransport("reading the record", fetched.error());
        }
        if (fetched->refusal) {
            ++metrics.ehr_failures;
            co_return FromRefusal(fetched->refused_request, *fetched->refusal);
        }
        if (!fetched->problem.empty()) {
            co_return Dead("the record cannot be assessed: " + fetched->problem);
        }
        co_return std::move(*fetched->record);
    }

    static std::optional<WrittenBefore> ReadWithRecord(FetchedRecord& fetched) {
        if (!fetched.also) return std::nullopt;
        return WrittenBeforeFrom(std::move(fetched.also_queries), std::move(*fetched.also));
    }

    // Renews the job's lease before a step that writes: a job slower than its lease (a slow
    // EHR) is not taken over while it runs. A lease already lost ends the attempt; the attempt
    // that took the job over does the work (and this one's outcome would be fenced anyway).
    asio::awaitable<std::optional<JobResult>> Renew(const Job& job) {
        const TimePoint until =
            Now() + std::chrono::duration_cast<std::chrono::milliseconds>(settings.lease);
        auto renewed = co_await AwaitCallback<Result<void>>([&](auto done) {
            store.ExtendLeaseAsync(job.id, job.attempts, until, std::move(done));
        });
        if (renewed || renewed.error() != Error::kConflict) co_return std::nullopt;
        co_return Retry("the lease ran out before the write: another attempt owns the job");
    }

    // The EHR holds data MicroCare cannot read: a person must look; the paths say where.
    static JobResult Unreadable(const fhir::IssueList& issues) {
        std::string where;
        for (const fhir::Issue& issue : issues) {
            if (where.size() < 400)
                where += (where.empty() ? "" : "; ") + issue.path + ": " + issue.message;
        }
        return Dead("the record cannot be assessed: " + where);
    }

    // `record` in the trail; the job's result when the trail cannot take it (the job is retried:
    // nothing is written to the EHR unaudited).
    asio::awaitable<std::optional<JobResult>> Record(AuditLog::Record record) {
        auto audited = co_await Audited(audit, std::move(record));
        if (audited) co_return std::nullopt;
        ++metrics.audit_failures;
        co_return Unaudited(audited.error());
    }

    // The decision, in the trail before anything is written: a decision the trail cannot
    // record is not written to the EHR.
    asio::awaitable<std::optional<JobResult>> AuditDecision(const Job& job,
                                                            const rules::RuleSet& pack,
                                                            const rules::RecordAssessment& run) {
        const rules::Assessment& assessment = run.assessment();
        for (const rules::Finding& f : assessment.findings) {
            if (f.severity == rules::Severity::kAbsolute) ++metrics.findings_absolute;
            if (f.severity == rules::Severity::kRelative) ++metrics.findings_relative;
        }
        const bool before_visit = run.encounter().proposed;
        AuditLog::Record record = AuditLog::MakeRecord(
            "decision",
            {{"job", std::to_string(job.id)},
             {before_visit ? "appointment" : "encounter", std::string(run.encounter().reference)},
             {"patient", run.encounter().subject},
             {"pack", pack.id + " " + pack.version},
             {"packSha256", pack.sha256},
             {before_visit ? "screening" : "session",
              before_visit ? "pre-visit" : std::to_string(assessment.session_number)},
             {"findings", run.FindingsLine()}});
        co_return co_await Record(std::move(record));
    }

    // A screening withdrawn (its appointment cancelled), in the trail before what it wrote is
    // retired.
    asio::awaitable<std::optional<JobResult>> AuditWithdrawal(const Job& job,
                                                              const rules::RuleSet& pack,
                                                              const Treated& treated,
                                                              const std::string& why) {
        AuditLog::Record record =
            AuditLog::MakeRecord("decision", {{"job", std::to_string(job.id)},
                                              {"appointment", treated.reference},
                                              {"patient", treated.patient},
                                              {"pack", pack.id + " " + pack.version},
                                              {"packSha256", pack.sha256},
                                              {"screening", "withdrawn"},
                                              {"reason", why}});
        co_return co_await Record(std::move(record));
    }

    asio::awaitable<JobResult> Assess(const Job& job, const JobPayload& payload) {
        // The pack in force when the job starts, kept to its end: a reload meanwhile changes
        // what later jobs apply, never this one.
        const std::shared_ptr<const rules::RuleSet> snapshot = rules();
        const rules::RuleSet& pack = *snapshot;
        auto fetched = co_await Fetch(payload.encounter, /*care_plan=*/true);
        if (auto* failed = std::get_if<JobResult>(&fetched)) co_return std::move(*failed);
        if (auto lost = co_await Renew(job)) co_return std::move(*lost);
        FetchedRecord& record = std::get<FetchedRecord>(fetched);
        std::optional<WrittenBefore> read_with_record = ReadWithRecord(record);
        fhir::IssueList issues;
        auto run = rules::RecordAssessment::Run(
            pack, std::move(record.documents), {payload.encounter, "job.encounter"}, Now(), issues);
        if (!run) co_return Unreadable(issues);
        const rules::Assessment& assessment = run->assessment();
        if (!assessment.applies) co_return Done("nothing to write: " + assessment.explanation);
        if (auto failed = co_await AuditDecision(job, pack, *run)) co_return std::move(*failed);
        // Named, not temporaries: GCC 12 destroys a temporary in a co_await expression twice.
        const Treated treated{payload.encounter, std::string(run->encounter().subject)};
        co_return co_await Write(job, pack, treated, run->transaction(),
                                 std::move(read_with_record));
    }

    // Pre-visit screening of a booked Appointment: the record assessed as if the treatment took
    // place at the appointment's start; DetectedIssues and a review Task due before it, revised
    // on every screening; what a cancelled appointment's screening wrote is retired.
    asio::awaitable<JobResult> Screen(const Job& job, const JobPayload& payload) {
        const std::shared_ptr<const rules::RuleSet> snapshot = rules();
        const rules::RuleSet& pack = *snapshot;
        const std::string& appointment = payload.appointment;
        auto fetched = co_await Fetch(appointment, /*care_plan=*/false);
        if (auto* failed = std::get_if<JobResult>(&fetched)) co_return std::move(*failed);
        if (auto lost = co_await Renew(job)) co_return std::move(*lost);
        FetchedRecord& record = std::get<FetchedRecord>(fetched);
        std::optional<WrittenBefore> read_with_record = ReadWithRecord(record);
        const std::string status(record.documents.resources.front()["status"].String());
        const Treated treated{appointment, record.patient};
        // Named, not temporaries: GCC 12 destroys a temporary in a co_await expression twice.
        const fhir::TransactionValue retirement = rules::BuildRetirement(pack, appointment);
        if (status == "cancelled" || status == "noshow" || status == "entered-in-error") {
            const std::string why = "the appointment is " + status + " (" + appointment + ")";
            if (auto failed = co_await AuditWithdrawal(job, pack, treated, why))
                co_return std::move(*failed);
            co_return co_await Write(job, pack, treated, retirement, std::move(read_with_record),
                                     why);
        }
        if (status != "booked") {
            // Not yet booked (proposed, pending, waitlist), or under way or over (arrived,
            // checked-in, fulfilled): then the Encounter is what is assessed.
            co_return Done("nothing to screen: " + appointment + " has status \"" + status + "\"");
        }
        fhir::IssueList issues;
        rules::EncounterChoice choice{appointment, "job.appointment"};
        choice.proposed = true;
        choice.pre_visit = true;
        choice.patient = record.patient;
        auto run =
            rules::RecordAssessment::Run(pack, std::move(record.documents), choice, Now(), issues);
        if (!run) co_return Unreadable(issues);
        if (!run->assessment().applies) {
            // No longer a microneedling appointment: its screening no longer holds.
            const std::string why = "the appointment is no longer for microneedling";
            if (auto failed = co_await AuditWithdrawal(job, pack, treated, why))
                co_return std::move(*failed);
            co_return co_await Write(job, pack, treated, retirement, std::move(read_with_record),
                                     why);
        }
        if (auto failed = co_await AuditDecision(job, pack, *run)) co_return std::move(*failed);
        co_return co_await Write(job, pack, treated, run->transaction(),
                                 std::move(read_with_record));
    }

    // What MicroCare wrote before for an encounter, read back by its own identifiers.
    asio::awaitable<std::variant<WrittenBefore, JobResult>> ReadWrittenBefore(
        std::vector<std::string> queries) {
        std::vector<SearchResult> searches;
        for (const std::string& query : queries) {
            ++metrics.ehr_requests;
            auto found = co_await ehr.SearchAll(query);
            if (!found) {
                ++metrics.ehr_failures;
                co_return FromTransport("reading what MicroCare wrote before", found.error());
            }
            if (found->failure) {
                ++metrics.ehr_failures;
                co_return FromRefusal("reading what MicroCare wrote before", *found->failure);
            }
            searches.push_back(std::move(*found));
        }
        co_return WrittenBeforeFrom(std::move(queries), std::move(searches));
    }

    // What became of each resource, in the trail; a result when it cannot be recorded.
    asio::awaitable<std::optional<JobResult>> AuditRevision(const Job& job,
                                                            const rules::RuleSet& pack,
                                                            const Treated& treated,
                                                            std::string written,
                                                            const std::string& changes) {
        AuditLog::Record record =
            AuditLog::MakeRecord("revision", {{"job", std::to_string(job.id)},
                                              {TreatedKind(treated), treated.reference},
                                              {"patient", treated.patient},
                                              {"pack", pack.id + " " + pack.version},
                                              {"packSha256", pack.sha256},
                                              {"written", written},
                                              {"changes", changes}});
        co_return co_await Record(std::move(record));
    }

    // Writes the difference between `assessed` (what the assessment wants on the EHR) and what
    // MicroCare wrote before for the treatment. A write refused because another revision
    // changed its resources since they were read (409/412 on If-Match) is revised again from a
    // fresh reading. `read_with_record`: the reading that came with the record, used for the
    // first revision where it asked what this treatment's identifiers name. `why_retired`: why
    // what is no longer wanted is retired, when not because the rules no longer find it.
    asio::awaitable<JobResult> Write(const Job& job, const rules::RuleSet& pack,
                                     const Treated& treated, const fhir::TransactionValue& assessed,
                                     std::optional<WrittenBefore> read_with_record,
                                     std::string why_retired = {}) {
        static constexpr int kRevisions = 4;
        const std::string& encounter = treated.reference;
        const bool care_plan = assessed.care_plan.has_value();
        std::vector<std::string> queries =
            WrittenBeforeQueries(treated.patient, assessed.key_prefix, care_plan);
        if (read_with_record && read_with_record->queries != queries) read_with_record.reset();
        for (int revision = 1;; ++revision) {
            std::variant<WrittenBefore, JobResult> read;
            if (revision == 1 && read_with_record) {
                read = std::move(*read_with_record);
            } else {
                read = co_await ReadWrittenBefore(queries);
            }
            if (auto* failed = std::get_if<JobResult>(&read)) co_return std::move(*failed);
            const WrittenBefore& before = std::get<WrittenBefore>(read);
            fhir::TransactionValue value = assessed;
            const auto changes =
                rules::ReviseTransaction(pack, value, before.resources, why_retired);
            const std::string described =
                changes.empty() ? "nothing was written before" : rules::DescribeChanges(changes);
            if (!value.HasWrites()) {
                if (auto failed = co_await AuditRevision(job, pack, treated, "nothing", described))
                    co_return std::move(*failed);
                // An earlier attempt may have written without recording it (a crash, a lost
                // answer): the versions the reading shows are recorded again, which records
                // nothing twice.
                if (job.attempts > 1 && !audit_events_ehr.empty()) {
                    const auto versions = co_await VersionsOf(before);
                    if (auto failed = co_await PostAuditEvents(job, pack, versions))
                        co_return std::move(*failed);
                }
                const std::string summary =
                    encounter + ": unchanged, nothing written (" + described + ")";
                // The reading is the check: a write that landed before a crash shows here.
                if (!care_plan) co_return Done(summary);
                co_return One("CarePlan", before.searches[0].resources.size(),
                              value.care_plan->identifier, summary);
            }
            if (auto lost = co_await Renew(job)) co_return std::move(*lost);
            fhir::JsonWriter writer;
            fhir::WriteTransaction(writer, value);
            ++metrics.ehr_requests;
            auto posted = co_await ehr.Post("", writer.Take());
            if (!posted) {
                // The request may have reached the EHR: the retry reads again and revises.
                ++metrics.ehr_failures;
                co_return FromTransport("posting the transaction", posted.error());
            }
            if ((posted->status == 409 || posted->status == 412) && revision < kRevisions) {
                Log::Info(
                    "the encounter's resources changed since they were read; revising again",
                    {{"job", std::to_string(job.id)}, {"status", std::to_string(posted->status)}});
                continue;
            }
            if (Classify(posted->status) != EhrAnswer::kSuccess) {
                ++metrics.ehr_failures;
                if (posted->status == 409 || posted->status == 412) {
                    co_return Retry("the transaction kept conflicting with other writes (" +
                                    std::to_string(posted->status) + ")");
                }
                co_return FromRefusal("the transaction", *posted);
            }
            // Written but not recorded: the retry reads it back and records it unchanged.
            if (auto failed = co_await AuditRevision(job, pack, treated, "transaction", described))
                co_return std::move(*failed);
            if (!audit_events_ehr.empty()) {
                fhir::IssueList issues;
                auto response = fhir::JsonDocument::Parse(posted->body, issues);
                auto written =
                    response ? fhir::WrittenVersions(response->Root(), value.EntryWrites(), issues)
                             : std::nullopt;
                if (!written) {
                    co_return Retry(
                        "the transaction-response does not say what was written (" +
                        (issues.empty() ? std::string() : fhir::FormatIssue(*issues.begin())) +
                        "); the retry records what it reads");
                }
                if (auto failed = co_await PostAuditEvents(job, pack, *written))
                    co_return std::move(*failed);
            }
            co_return co_await CheckOne(value, encounter + ": " + described);
        }
    }

    // The versions of MicroCare's resources a reading shows. Whether each is its resource's
    // first version, its history tells (version ids need not be numbers); where the EHR keeps
    // none, it is taken as the first.
    asio::awaitable<std::vector<fhir::WrittenVersion>> VersionsOf(const WrittenBefore& before) {
        std::vector<fhir::WrittenVersion> versions;
        for (const rules::WrittenResource& r : before.resources) {
            if (r.version_id.empty()) continue;
            const std::string resource = r.resource_type + "/" + r.id;
            ++metrics.ehr_requests;
            auto history = co_await ehr.SearchAll(resource + "/_history");
            const bool update = history && !history->failure && history->resources.size() > 1;
            versions.push_back({resource + "/_history/" + r.version_id,
                                std::string(fhir::PatientOfWritten(r.resource)), update});
        }
        co_return versions;
    }

    asio::awaitable<Result<HttpResponse>> PostAuditEventBundle(
        const fhir::AuditEventValue& common, const std::vector<fhir::WrittenVersion>& written,
        std::string_view type) {
        fhir::JsonWriter out;
        fhir::WriteAuditEventBatch(out, common, written, type);
        ++metrics.ehr_requests;
        co_return co_await ehr.Post("", out.Take());
    }

    // The FHIR AuditEvents of written versions (audit.fhirAuditEvents), posted as one batch
    // right after the transaction, each created only if none has its key; a result when they
    // could not all be recorded.
    asio::awaitable<std::optional<JobResult>> PostAuditEvents(
        const Job& job, const rules::RuleSet& pack,
        const std::vector<fhir::WrittenVersion>& written) {
        if (audit_events_ehr.empty() || written.empty()) co_return std::nullopt;
        fhir::AuditEventValue common;
        common.recorded = Now();
        common.software = audit_events_software;
        common.ehr = audit_events_ehr;
        common.pack = pack.id + " " + pack.version + " " + pack.sha256;
        common.job = std::to_string(job.id);
        // As a batch where the EHR takes batches; else as a transaction, which it takes.
        auto posted = co_await PostAuditEventBundle(common, written, "batch");
        if (posted &&
            Classify(posted->status, /*optional_feature=*/true) == EhrAnswer::kUnsupported) {
            posted = co_await PostAuditEventBundle(common, written, "transaction");
        }
        if (!posted) {
            ++metrics.ehr_failures;
            co_return FromTransport("posting the AuditEvents", posted.error());
        }
        if (Classify(posted->status) != EhrAnswer::kSuccess) {
            ++metrics.ehr_failures;
            co_return FromRefusal("the AuditEvents batch", *posted);
        }
        fhir::IssueList issues;
        auto response = fhir::JsonDocument::Parse(posted->body, issues);
        const fhir::Node entries = response ? response->Root()["entry"] : fhir::Node();
        if (!response || entries.Size() != written.size()) {
            co_return Retry("the AuditEvents batch was not answered entry by entry");
        }
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            const fhir::Node answer = entries[i]["response"];
            const unsigned status = EntryStatus(answer["status"].String());
            if (Classify(status) == EhrAnswer::kSuccess) continue;
            ++metrics.ehr_failures;
            HttpResponse refusal;
            refusal.status = status;
            refusal.body = answer["outcome"].Exists() ? fhir::Serialize(answer["outcome"]) : "";
            co_return FromRefusal("the AuditEvent of " + written[i].what + " (in a batch)",
                                  refusal);
        }
        co_return std::nullopt;
    }

    // Some servers race on concurrent conditional creates: count what carries our id, the
    // treatment's lock (its CarePlan; before a visit, its Task).
    asio::awaitable<JobResult> CheckOne(const fhir::TransactionValue& value, std::string summary) {
        const bool plan = value.care_plan.has_value();
        if (!plan && !value.task) co_return Done(std::move(summary));
        const std::string type = plan ? "CarePlan" : "Task";
        const fhir::IdentifierValue& id =
            plan ? value.care_plan->identifier : value.task->identifier;
        auto check =
            co_await ehr.SearchAll(type + "?identifier=" + QueryValue(id.system + "|" + id.value));
        if (!check) co_return FromTransport("checking the " + type, check.error());
        if (check->failure) co_return FromRefusal("checking the " + type, *check->failure);
        const std::size_t found = check->resources.size();
        if (found == 0) co_return Retry("the EHR accepted the transaction but holds no " + type);
        co_return One(type, found, id, std::move(summary));
    }

    // Two CarePlans (or Tasks) for one treatment are not MicroCare's to merge: a person decides.
    static JobResult One(const std::string& type, std::size_t found,
                         const fhir::IdentifierValue& id, std::string summary) {
        if (found > 1) {
            return Dead("the EHR holds " + std::to_string(found) + " " + type +
                            "s with identifier " + id.value + ": remove the extra ones",
                        summary);
        }
        return Done(summary);
    }

    // Events the EHR numbered but we never saw: ask it to replay them ($events, from the
    // Subscriptions R5 backport) and journal a job for each.
    asio::awaitable<JobResult> Recover(const JobPayload& payload) {
        const std::string query = payload.subscription + "/$events?eventsSinceNumber=" +
                                  std::to_string(payload.from_event) +
                                  "&eventsUntilNumber=" + std::to_string(payload.to_event);
        auto response = co_await ehr.Get(query);
        if (!response) co_return FromTransport("replaying events", response.error());
        const EhrAnswer answer = Classify(response->status, /*optional_feature=*/true);
        if (answer == EhrAnswer::kUnsupported) {
            co_return Dead("events " + std::to_string(payload.from_event) + "-" +
                               std::to_string(payload.to_event) + " of " + payload.subscription +
                               " were missed and the EHR cannot replay them ($events answered " +
                               std::to_string(response->status) +
                               "): check those encounters by hand",
                           response->body);
        }
        if (answer != EhrAnswer::kSuccess) co_return FromRefusal("$events", *response);
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(response->body, issues);
        if (!doc) co_return Retry("$events answered with invalid JSON");
        auto notification = ParseNotification(&*doc, "", issues);
        if (!notification)
            co_return Dead("$events answered with something that is not a notification");
        std::size_t queued = 0;
        for (const Notification::Event& event : notification->events) {
            if (event.encounter.empty()) continue;
            NewJob job = SubscriptionEventJob(payload.subscription, event.number, event.encounter);
            auto enqueued = co_await AwaitCallback<Result<Enqueued>>(
                [&](auto done) { store.EnqueueAsync(job, std::move(done)); });
            if (!enqueued) co_return Retry("cannot journal replayed events");
            queued += enqueued->created ? 1 : 0;
        }
        co_return Done("replayed events " + std::to_string(payload.from_event) + "-" +
                       std::to_string(payload.to_event) + ": " + std::to_string(queued) +
                       " job(s)");
    }
};

Worker::Worker(asio::any_io_executor executor, const WorkerSettings& settings, JobStore& store,
               Ehr& ehr, PackSource rules, Metrics& metrics, AuditLog& audit, WallClock now)
    : impl_(std::make_shared<Impl>(executor, settings, store, ehr, std::move(rules), metrics, audit,
                                   std::move(now))) {}

Worker::Worker(asio::any_io_executor executor, const WorkerSettings& settings, JobStore& store,
               Ehr& ehr, std::shared_ptr<const rules::RuleSet> rules, Metrics& metrics,
               AuditLog& audit, WallClock now)
    : Worker(
          executor, settings, store, ehr, [rules = std::move(rules)] { return rules; }, metrics,
          audit, std::move(now)) {}

Worker::~Worker() { impl_->stopping = true; }

void Worker::PostAuditEvents(std::string software, std::string ehr_base_url) {
    impl_->audit_events_software = std::move(software);
    impl_->audit_events_ehr = std::move(ehr_base_url);
}

void Worker::Start() {
    for (int i = 0; i < impl_->settings.concurrency; ++i) {
        impl_->timers.push_back(std::make_unique<asio::steady_timer>(asio::make_strand(impl_->io)));
    }
    for (std::size_t i = 0; i < impl_->timers.size(); ++i) {
        asio::co_spawn(impl_->timers[i]->get_executor(), impl_->Loop(i),
                       ReportFailure("worker loop", impl_->metrics.tasks_failed));
    }
    asio::co_spawn(impl_->executor, impl_->Maintenance(),
                   ReportFailure("job maintenance", impl_->metrics.tasks_failed));
}

asio::awaitable<void> Worker::Stop(std::chrono::milliseconds grace) {
    impl_->stopping = true;
    co_await asio::post(impl_->executor, use_awaitable);  // onto the worker's strand
    asio::steady_timer timer(impl_->executor);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (impl_->loops > 0 && std::chrono::steady_clock::now() < deadline) {
        impl_->WakeAll();
        timer.expires_after(std::chrono::milliseconds(20));
        co_await timer.async_wait(asio::as_tuple(use_awaitable));
    }
}

void Worker::Wake() {
    // Under load every acknowledgement asks for a wake-up: one pending wake-up serves them all.
    if (impl_->wake_pending.exchange(true)) return;
    asio::post(impl_->executor, [impl = impl_] {
        impl->wake_pending = false;
        impl->WakeAll();
    });
}

asio::awaitable<bool> Worker::RunOnce() {
    co_await asio::post(impl_->executor, use_awaitable);  // onto a strand of the worker's
    co_return co_await impl_->LeaseAndRun();
}

}  // namespace microcare::adapter
