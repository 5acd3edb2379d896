#include "adapter/poll/ehr_poller.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <set>
#include <utility>

#include "adapter/async_util.hpp"
#include "adapter/client/outbound_url.hpp"
#include "adapter/client/search_page.hpp"
#include "adapter/jobs/job_contract.hpp"
#include "adapter/log.hpp"
#include "adapter/poll/poll_cursor.hpp"
#include "adapter/time_bound.hpp"
#include "fhir/bundle.hpp"
#include "fhir/patient_record.hpp"
#include "rules/evaluator.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;

// What one page asks of the store.
struct PagePlan {
    std::vector<NewJob> triggers;
    std::size_t encounters = 0;
    std::size_t skipped = 0;
    std::optional<TimePoint> high_water;  // the latest meta.lastUpdated of its Encounters
};

// The microneedling Encounters among `resources` ("Encounter/id"), by the pack's own
// recognition without I/O: the resources are read as one small record, so that an Encounter is
// seen together with the Procedures that name it, exactly as the worker will see it in the
// patient's record.
std::set<std::string> MicroneedlingEncounters(const rules::RuleSet& pack,
                                              const std::vector<fhir::Node>& resources) {
    fhir::IssueList ignored;  // an unreadable resource is simply not recognised
    const fhir::BundleIndex index(resources, ignored);
    const fhir::PatientRecord record = fhir::ReadPatientRecord(index, ignored);
    std::set<std::string> found;
    for (const fhir::ClinicalResource* encounter :
         rules::FindMicroneedlingEncounters(pack, record)) {
        found.emplace(encounter->reference);
    }
    return found;
}

// The Encounters of a page that are not in `recognised`, as a search for their Procedures
// (`Procedure?encounter=Encounter/a,Encounter/b`: one request, the values OR-ed); empty when
// every one is recognised. An encounter recorded only as "Aesthetic treatment visit" is a
// microneedling session by its Procedure, which a search of Encounters does not return
// (`_revinclude` is optional, and Medplum's in-memory server ignores it).
std::string ProcedureSearch(const std::vector<fhir::Node>& resources,
                            const std::set<std::string>& recognised, std::size_t count) {
    std::string values;
    for (const fhir::Node& resource : resources) {
        if (resource["resourceType"].String() != "Encounter") continue;
        const std::string reference = "Encounter/" + std::string(resource["id"].String());
        if (resource["id"].String().empty() || recognised.contains(reference)) continue;
        values += (values.empty() ? "" : ",") + QueryValue(reference);
    }
    if (values.empty()) return {};
    return "Procedure?encounter=" + values + "&_count=" + std::to_string(count);
}

// The microneedling Appointments among `resources`, recognised as the worker will screen them
// (each as a proposed treatment).
std::set<std::string> MicroneedlingAppointments(const rules::RuleSet& pack,
                                                const std::vector<fhir::Node>& resources) {
    fhir::IssueList ignored;
    const fhir::BundleIndex index(resources, ignored);
    fhir::PatientRecord record = fhir::ReadPatientRecord(index, ignored);
    for (const fhir::BundleEntry& entry : index.entries()) {
        if (entry.resource_type == "Appointment" && !entry.id.empty())
            fhir::ReadProposedTreatment(index, entry, "", record, ignored);
    }
    std::set<std::string> found;
    for (const fhir::ClinicalResource* r : rules::FindMicroneedlingEncounters(pack, record)) {
        if (r->proposed) found.emplace(r->reference);
    }
    return found;
}

// A status a screening acts on: booked is screened, the others retire what it wrote.
bool Screened(std::string_view status) {
    return status == "booked" || status == "cancelled" || status == "noshow" ||
           status == "entered-in-error";
}

// Decides, without I/O, which resources of `type` (Encounter or Appointment) on a page become
// jobs: those recognised as microneedling (an Appointment also of a status a screening acts
// on), one per version, or per re-screening (`rescreen`: its key) when that is not empty.
PagePlan PlanPage(std::string_view type, const std::vector<fhir::Node>& resources,
                  const std::set<std::string>& microneedling, std::string_view rescreen = {}) {
    const bool appointment = type == "Appointment";
    PagePlan plan;
    for (const fhir::Node& resource : resources) {
        if (resource["resourceType"].String() != type) continue;
        const std::string_view id = resource["id"].String();
        if (id.empty()) continue;  // a server's search answer always carries ids
        ++plan.encounters;
        const std::string_view last_updated = resource["meta"]["lastUpdated"].String();
        if (auto instant = ParseInstant(std::string(last_updated))) {
            plan.high_water = std::max(plan.high_water.value_or(*instant), *instant);
        }
        const std::string reference = std::string(type) + "/" + std::string(id);
        if (!microneedling.contains(reference) ||
            (appointment && !Screened(resource["status"].String()))) {
            ++plan.skipped;
            continue;
        }
        const std::string_view version_id = resource["meta"]["versionId"].String();
        const std::string version = !rescreen.empty()     ? std::string(rescreen)
                                    : !version_id.empty() ? std::string(version_id)
                                                          : "@" + std::string(last_updated);
        const std::string_view poll = !appointment       ? kEncounterPollName
                                      : rescreen.empty() ? kAppointmentPollName
                                                         : kRescreenPollName;
        AdminNote note;
        note.event = "trigger";
        note.fields = {{"channel", "poll"},
                       {"poll", std::string(poll)},
                       {appointment ? "appointment" : "encounter", reference},
                       {"version", version}};
        NewJob job = appointment ? ScreenJob(reference, version) : PollJob(reference, version);
        job.note = std::move(note);
        plan.triggers.push_back(std::move(job));
    }
    return plan;
}

}  // namespace

EhrPoller::EhrPoller(asio::any_io_executor executor, const PollSettings& settings,
                     std::string ehr_base_url, Ehr& ehr, JobStore& store, PackSource rules,
                     Metrics& metrics, asio::thread_pool& blocking, PollHealth& health,
                     WallClock now, std::function<void()> journaled)
    : executor_(std::move(executor)),
      settings_(settings),
      base_url_(std::move(ehr_base_url)),
      ehr_(ehr),
      store_(store),
      rules_(std::move(rules)),
      metrics_(metrics),
      blocking_(blocking),
      health_(health),
      now_(std::move(now)),
      journaled_(std::move(journaled)),
      timer_(executor_) {}

asio::awaitable<Result<PollCursor>> EhrPoller::Cursor(std::string_view poll) {
    const std::string name(poll);
    auto stored = co_await Offload(blocking_, [&] { return store_.ReadPollCursor(name); });
    if (!stored) co_return stored.error();
    if (*stored) co_return **stored;
    // The first start: the cursor is committed before anything is searched, so that a restart
    // after a failed first poll does not move `since: now` past what was finished meanwhile.
    // One "now" for every search that starts here (encounters, appointments, re-screening):
    // the EHR's clock is asked once.
    // (Not a conditional expression: GCC 12 mishandles co_await in one.)
    if (settings_.since) {
        first_start_ = settings_.since;
    } else if (!first_start_) {
        first_start_ = co_await EhrNow();
    }
    const TimePoint since = *first_start_;
    PollPage first{name, {}, PollCursor{since, since}};
    auto committed = co_await Offload(blocking_, [&] { return store_.CommitPollPage(first); });
    if (!committed) co_return committed.error();
    Log::Info("polling starts", {{"poll", name}, {"since", fhir::FormatInstant(since, 0)}});
    co_return first.cursor;
}

asio::awaitable<TimePoint> EhrPoller::EhrNow() {
    // `since: now` is "now" on the EHR's clock, the clock of the `_lastUpdated` stamps the
    // cursor compares: with ours, a visit finished just after the first start could fall below
    // the floor on an EHR whose clock is behind. After the first start only the EHR's stamps
    // move the cursor, so our clock never matters again.
    auto answer = co_await ehr_.Get("metadata");
    if (answer && answer->status / 100 == 2) {
        if (auto date = answer->Date())
            co_return std::chrono::floor<std::chrono::milliseconds>(*date);
    }
    Log::Warning("the EHR's clock is unknown (no Date header): polling starts at MicroCare's");
    co_return now_();
}

asio::awaitable<Result<PollReport>> EhrPoller::PollOnce() {
    const std::shared_ptr<const rules::RuleSet> pack = rules_();
    PollReport report;
    if (auto polled = co_await PollEncounters(*pack, report); !polled) co_return polled.error();
    if (settings_.appointments.enabled && !stopping_) {
        if (auto polled = co_await PollAppointments(*pack, report); !polled)
            co_return polled.error();
    }
    if (report.more && report.queued == 0) {
        Log::Warning(
            "a poll read only what it had seen: the overlap window holds more than "
            "poll.maxPagesPerPoll pages (make it shorter, or the pages larger)",
            {{"requests", std::to_string(report.requests)}});
    }
    co_return report;
}

asio::awaitable<Result<void>> EhrPoller::PollEncounters(const rules::RuleSet& pack,
                                                        PollReport& report) {
    auto cursor = co_await Cursor(kPollName);
    if (!cursor) co_return cursor.error();
    report.cursor = *cursor;
    // After a poll cut short at max_pages, the next one goes on from the cursor itself (less
    // a millisecond, so that stamps equal to it are read again): starting from the overlap
    // window again would re-read the same pages and never get further.
    const auto overlap = catching_up_ ? std::chrono::milliseconds(1) : settings_.overlap;
    std::string url =
        PollSearch(settings_.query, SearchAfter(*cursor, overlap), settings_.page_size);
    bool more = false;
    auto read = co_await ReadPages(Target::kEncounters, pack, std::move(url), kPollName,
                                   report.cursor, true, {}, report, more);
    catching_up_ = more;
    co_return read;
}

asio::awaitable<Result<void>> EhrPoller::PollAppointments(const rules::RuleSet& pack,
                                                          PollReport& report) {
    const AppointmentPollSettings& a = settings_.appointments;
    const TimePoint today = std::chrono::floor<std::chrono::days>(now_());
    auto cursor = co_await Cursor(kAppointmentPollName);
    if (!cursor) co_return cursor.error();
    const auto overlap =
        appointments_catching_up_ ? std::chrono::milliseconds(1) : settings_.overlap;
    std::string url = HorizonSearch(a.query, today, a.horizon_days, SearchAfter(*cursor, overlap),
                                    settings_.page_size);
    bool more = false;
    auto read = co_await ReadPages(Target::kAppointments, pack, std::move(url),
                                   kAppointmentPollName, *cursor, true, {}, report, more);
    appointments_catching_up_ = more;
    if (!read) co_return read;

    // The re-screening: its cursor's high-water mark is when the last one ran (the first start,
    // before any: every appointment already booked is screened then). Its jobs are keyed by when
    // it was due, so a sweep cut short by a crash is done again without doubling a job.
    auto last = co_await Cursor(kRescreenPollName);
    if (!last) co_return last.error();
    const TimePoint due =
        last->high_water == last->floor ? last->floor : last->high_water + a.rescreen_every;
    const TimePoint now = now_();
    if (stopping_ || now < due) co_return Result<void>();
    PollCursor swept = *last;
    const std::string key = "rescreen@" + PollInstant(due);
    auto sweep = co_await ReadPages(
        Target::kAppointments, pack,
        HorizonSearch(a.rescreen_query, today, a.horizon_days, due, settings_.page_size),
        kRescreenPollName, swept, false, key, report, more);
    if (!sweep) co_return sweep;
    if (more) co_return Result<void>();  // the rest at the next poll, under the same key
    swept.high_water = std::max(now, swept.floor + std::chrono::milliseconds(1));
    PollPage done{std::string(kRescreenPollName), {}, swept};
    auto committed = co_await Offload(blocking_, [&] { return store_.CommitPollPage(done); });
    if (!committed) co_return committed.error();
    report.rescreened = true;
    co_return Result<void>();
}

asio::awaitable<Result<void>> EhrPoller::ReadPages(Target target, const rules::RuleSet& pack,
                                                   std::string url, std::string_view poll,
                                                   PollCursor& cursor, bool advance,
                                                   std::string_view rescreen, PollReport& report,
                                                   bool& more) {
    std::set<std::string> followed;
    std::size_t pages = 0;  // of Encounters or Appointments: what max_pages bounds
    more = false;
    while (!url.empty() && !stopping_) {
        if (pages++ >= settings_.max_pages) {
            more = true;
            report.more = true;
            break;
        }
        // A server whose `next` leads back would otherwise keep us reading forever.
        if (!followed.insert(url).second) co_return Error::kBadResponse;
        ++report.requests;
        ++metrics_.poll_requests;
        auto response = co_await ehr_.Get(url);
        if (!response) co_return response.error();
        if (Classify(response->status) != EhrAnswer::kSuccess) {
            Log::Warning("the EHR did not answer the poll's search",
                         {{"poll", std::string(poll)},
                          {"status", std::to_string(response->status)},
                          {"page", std::to_string(pages)}});
            co_return Error::kBadResponse;
        }
        auto page = ParseSearchPage(response->body, base_url_);
        if (!page) co_return page.error();

        std::vector<fhir::Node> resources = page->resources;
        PagePlan plan;
        // Kept until the page is planned: `resources` view into it.
        std::optional<SearchResult> procedures;
        if (target == Target::kAppointments) {
            plan = PlanPage("Appointment", resources, MicroneedlingAppointments(pack, resources),
                            rescreen);
        } else {
            std::set<std::string> microneedling = MicroneedlingEncounters(pack, resources);
            if (std::string search = ProcedureSearch(resources, microneedling, settings_.page_size);
                !search.empty()) {
                auto found = co_await ehr_.SearchAll(std::move(search));
                if (!found) co_return found.error();
                report.requests += std::max<std::size_t>(found->page_count, 1);
                metrics_.poll_requests += std::max<std::size_t>(found->page_count, 1);
                if (found->failure) {
                    Log::Warning("the EHR did not answer the poll's search for Procedures",
                                 {{"status", std::to_string(found->failure->status)}});
                    co_return Error::kBadResponse;
                }
                procedures = std::move(*found);
                resources.insert(resources.end(), procedures->resources.begin(),
                                 procedures->resources.end());
                microneedling = MicroneedlingEncounters(pack, resources);
            }
            plan = PlanPage("Encounter", resources, microneedling);
        }
        PollPage journal{std::string(poll), std::move(plan.triggers), cursor};
        if (advance && plan.high_water) {
            journal.cursor.high_water = std::max(journal.cursor.high_water, *plan.high_water);
        }
        auto enqueued = co_await Offload(blocking_, [&] { return store_.CommitPollPage(journal); });
        if (!enqueued) co_return enqueued.error();
        cursor = journal.cursor;

        const auto created = static_cast<std::size_t>(std::count_if(
            enqueued->begin(), enqueued->end(), [](const Enqueued& e) { return e.created; }));
        const bool appointments = target == Target::kAppointments;
        (appointments ? report.appointments : report.encounters) += plan.encounters;
        report.skipped += plan.skipped;
        report.queued += created;
        report.seen += enqueued->size() - created;
        metrics_.triggers_accepted += created;
        if (appointments) {
            report.screenings += created;
            metrics_.poll_appointments_queued += created;
            metrics_.poll_appointments_seen += enqueued->size() - created;
            metrics_.poll_appointments_skipped += plan.skipped;
        } else {
            metrics_.poll_encounters_queued += created;
            metrics_.poll_encounters_seen += enqueued->size() - created;
            metrics_.poll_encounters_skipped += plan.skipped;
        }
        if (created > 0 && journaled_) {
            co_await Offload(blocking_, [this] {
                journaled_();
                return true;
            });
        }
        url = std::move(page->next);
    }
    co_return Result<void>();
}

std::chrono::milliseconds EhrPoller::NextDelay(int failures) const {
    if (failures <= 0) return settings_.interval;
    auto delay = settings_.backoff_initial;
    for (int i = 1; i < failures && delay < settings_.backoff_max; ++i) delay *= 2;
    return std::min(delay, settings_.backoff_max);
}

asio::awaitable<std::chrono::milliseconds> EhrPoller::PollAndRecord() {
    ++metrics_.polls;
    auto report = co_await PollOnce();
    if (report) {
        failures_ = 0;
        health_.NoteSuccess(now_());
        if (report->queued > 0 || report->more || report->rescreened) {
            Log::Info("poll journaled jobs", {{"queued", std::to_string(report->queued)},
                                              {"screenings", std::to_string(report->screenings)},
                                              {"seen", std::to_string(report->seen)},
                                              {"skipped", std::to_string(report->skipped)},
                                              {"requests", std::to_string(report->requests)},
                                              {"rescreened", report->rescreened ? "yes" : "no"},
                                              {"more", report->more ? "yes" : "no"}});
        }
    } else {
        ++metrics_.poll_failures;
        failures_ = health_.NoteFailure(report.error().message());
        Log::Warning("a poll of the EHR failed; it is tried again",
                     {{"error", report.error().message()},
                      {"failures", std::to_string(failures_)},
                      {"retryInMs", std::to_string(NextDelay(failures_).count())}});
    }
    co_return NextDelay(failures_);
}

asio::awaitable<void> EhrPoller::Run() {
    while (!stopping_) {
        const auto delay = co_await PollAndRecord();
        if (stopping_) break;
        timer_.expires_after(delay);
        auto [ec] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) break;
    }
}

void EhrPoller::Stop() {
    stopping_ = true;
    // The timer is only touched on the poller's executor (a strand).
    asio::post(executor_, [this] { timer_.cancel(); });
}

}  // namespace microcare::adapter
