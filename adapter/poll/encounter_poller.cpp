#include "adapter/poll/encounter_poller.hpp"

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

// Decides, without I/O, which Encounters of a page become jobs.
PagePlan PlanPage(const std::vector<fhir::Node>& resources,
                  const std::set<std::string>& microneedling) {
    PagePlan plan;
    for (const fhir::Node& resource : resources) {
        if (resource["resourceType"].String() != "Encounter") continue;
        const std::string_view id = resource["id"].String();
        if (id.empty()) continue;  // a server's search answer always carries ids
        ++plan.encounters;
        const std::string_view last_updated = resource["meta"]["lastUpdated"].String();
        if (auto instant = ParseInstant(std::string(last_updated))) {
            plan.high_water = std::max(plan.high_water.value_or(*instant), *instant);
        }
        const std::string reference = "Encounter/" + std::string(id);
        if (!microneedling.contains(reference)) {
            ++plan.skipped;
            continue;
        }
        const std::string_view version_id = resource["meta"]["versionId"].String();
        const std::string version =
            !version_id.empty() ? std::string(version_id) : "@" + std::string(last_updated);
        AdminNote note;
        note.event = "trigger";
        note.fields = {{"channel", "poll"},
                       {"poll", std::string(EncounterPoller::kPollName)},
                       {"encounter", reference},
                       {"version", version}};
        NewJob job = PollJob(reference, version);
        job.note = std::move(note);
        plan.triggers.push_back(std::move(job));
    }
    return plan;
}

}  // namespace

EncounterPoller::EncounterPoller(asio::any_io_executor executor, const PollSettings& settings,
                                 std::string ehr_base_url, Ehr& ehr, JobStore& store,
                                 PackSource rules, Metrics& metrics, asio::thread_pool& blocking,
                                 PollHealth& health, WallClock now, std::function<void()> journaled)
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

asio::awaitable<Result<PollCursor>> EncounterPoller::Cursor() {
    const std::string name(kPollName);
    auto stored = co_await Offload(blocking_, [&] { return store_.ReadPollCursor(name); });
    if (!stored) co_return stored.error();
    if (*stored) co_return **stored;
    // The first start: the cursor is committed before anything is searched, so that a restart
    // after a failed first poll does not move `since: now` past what was finished meanwhile.
    const TimePoint since = settings_.since ? *settings_.since : co_await EhrNow();
    PollPage first{name, {}, PollCursor{since, since}};
    auto committed = co_await Offload(blocking_, [&] { return store_.CommitPollPage(first); });
    if (!committed) co_return committed.error();
    Log::Info("polling starts", {{"poll", name}, {"since", fhir::FormatInstant(since, 0)}});
    co_return first.cursor;
}

asio::awaitable<TimePoint> EncounterPoller::EhrNow() {
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

asio::awaitable<Result<PollReport>> EncounterPoller::PollOnce() {
    auto cursor = co_await Cursor();
    if (!cursor) co_return cursor.error();
    PollReport report;
    report.cursor = *cursor;
    const std::shared_ptr<const rules::RuleSet> pack = rules_();
    // After a poll cut short at max_pages, the next one goes on from the cursor itself (less
    // a millisecond, so that stamps equal to it are read again): starting from the overlap
    // window again would re-read the same pages and never get further.
    const auto overlap = catching_up_ ? std::chrono::milliseconds(1) : settings_.overlap;
    std::string url =
        PollSearch(settings_.query, SearchAfter(*cursor, overlap), settings_.page_size);
    std::set<std::string> followed;
    std::size_t pages = 0;  // of Encounters: what max_pages bounds
    while (!url.empty() && !stopping_) {
        if (pages++ >= settings_.max_pages) {
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
                         {{"status", std::to_string(response->status)},
                          {"page", std::to_string(report.requests)}});
            co_return Error::kBadResponse;
        }
        auto page = ParseSearchPage(response->body, base_url_);
        if (!page) co_return page.error();

        std::vector<fhir::Node> resources = page->resources;
        std::set<std::string> microneedling = MicroneedlingEncounters(*pack, resources);
        // Kept until the page is planned: `resources` view into it.
        std::optional<SearchResult> procedures;
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
            microneedling = MicroneedlingEncounters(*pack, resources);
        }
        PagePlan plan = PlanPage(resources, microneedling);
        PollPage journal{std::string(kPollName), std::move(plan.triggers), report.cursor};
        if (plan.high_water) {
            journal.cursor.high_water = std::max(journal.cursor.high_water, *plan.high_water);
        }
        auto enqueued = co_await Offload(blocking_, [&] { return store_.CommitPollPage(journal); });
        if (!enqueued) co_return enqueued.error();
        report.cursor = journal.cursor;

        const auto created = static_cast<std::size_t>(std::count_if(
            enqueued->begin(), enqueued->end(), [](const Enqueued& e) { return e.created; }));
        report.encounters += plan.encounters;
        report.skipped += plan.skipped;
        report.queued += created;
        report.seen += enqueued->size() - created;
        metrics_.poll_encounters_queued += created;
        metrics_.triggers_accepted += created;
        metrics_.poll_encounters_seen += enqueued->size() - created;
        metrics_.poll_encounters_skipped += plan.skipped;
        if (created > 0 && journaled_) {
            co_await Offload(blocking_, [this] {
                journaled_();
                return true;
            });
        }
        url = std::move(page->next);
    }
    catching_up_ = report.more;
    if (report.more && report.queued == 0) {
        Log::Warning(
            "a poll read only encounters it had seen: the overlap window holds more "
            "than poll.maxPagesPerPoll pages (make it shorter, or the pages larger)",
            {{"requests", std::to_string(report.requests)}});
    }
    co_return report;
}

std::chrono::milliseconds EncounterPoller::NextDelay(int failures) const {
    if (failures <= 0) return settings_.interval;
    auto delay = settings_.backoff_initial;
    for (int i = 1; i < failures && delay < settings_.backoff_max; ++i) delay *= 2;
    return std::min(delay, settings_.backoff_max);
}

asio::awaitable<std::chrono::milliseconds> EncounterPoller::PollAndRecord() {
    ++metrics_.polls;
    auto report = co_await PollOnce();
    if (report) {
        failures_ = 0;
        health_.NoteSuccess(now_());
        if (report->queued > 0 || report->more) {
            Log::Info("poll journaled encounters", {{"queued", std::to_string(report->queued)},
                                                    {"seen", std::to_string(report->seen)},
                                                    {"skipped", std::to_string(report->skipped)},
                                                    {"requests", std::to_string(report->requests)},
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

asio::awaitable<void> EncounterPoller::Run() {
    while (!stopping_) {
        const auto delay = co_await PollAndRecord();
        if (stopping_) break;
        timer_.expires_after(delay);
        auto [ec] = co_await timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) break;
    }
}

void EncounterPoller::Stop() {
    stopping_ = true;
    // The timer is only touched on the poller's executor (a strand).
    asio::post(executor_, [this] { timer_.cancel(); });
}

}  // namespace microcare::adapter
