#include "adapter/metrics.hpp"

#include <string_view>

namespace microcare::adapter {
namespace {

void Header(std::string& out, const char* name, const char* help, const char* type) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
}

void Counter(std::string& out, const char* name, const char* help, std::uint64_t value,
             const char* type = "counter") {
    Header(out, name, help, type);
    out += name;
    out += ' ';
    out += std::to_string(value);
    out += '\n';
}

// A label value in the text format: backslash, double quote and newline escaped. Pack ids and
// versions are FHIR ids, but the exposition must stay parseable whatever they hold.
std::string LabelValue(std::string_view text) {
    std::string out;
    for (char c : text) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    return out;
}

}  // namespace

std::uint64_t Metrics::JobsRetried() const {
    std::uint64_t total = 0;
    for (const auto& count : jobs_retried) total += count;
    return total;
}

std::string Metrics::Prometheus(const LiveReadings& live) const {
    std::string out;
    Counter(out, "microcare_http_requests_total", "HTTP requests received.", requests);
    Counter(out, "microcare_http_requests_refused_total", "Requests answered with a 4xx.",
            requests_refused);
    Counter(out, "microcare_triggers_accepted_total", "Triggers journaled as new jobs.",
            triggers_accepted);
    Counter(out, "microcare_triggers_duplicate_total", "Re-sent triggers answered from the store.",
            triggers_duplicate);
    Counter(out, "microcare_subscription_gaps_total", "Gaps seen in subscription event numbers.",
            subscription_gaps);
    Counter(out, "microcare_jobs_done_total", "Jobs completed.", jobs_done);
    // One series per reason, every one always present: sum() over them is the total that the
    // unlabelled counter used to be, and a rate never starts from a missing series.
    Header(out, "microcare_jobs_retried_total", "Job attempts scheduled again, by reason.",
           "counter");
    for (FailureReason reason : kFailureReasons) {
        out += "microcare_jobs_retried_total{reason=\"";
        out += ToString(reason);
        out += "\"} ";
        out += std::to_string(jobs_retried[static_cast<std::size_t>(reason)]);
        out += '\n';
    }
    Counter(out, "microcare_jobs_dead_total", "Jobs dead-lettered.", jobs_dead);
    Counter(out, "microcare_ehr_requests_total", "Requests sent to the EHR.", ehr_requests);
    Counter(out, "microcare_ehr_failures_total", "EHR requests that failed or were refused.",
            ehr_failures);
    Counter(out, "microcare_findings_absolute_total", "Absolute contraindications found.",
            findings_absolute);
    Counter(out, "microcare_findings_relative_total", "Relative contraindications found.",
            findings_relative);
    Counter(out, "microcare_tasks_failed_total",
            "Background tasks (worker loops, sessions) ended by an unexpected exception.",
            tasks_failed);
    Counter(out, "microcare_audit_failures_total",
            "Audit records that could not be written (the trigger was refused with a 503).",
            audit_failures);
    Counter(out, "microcare_http_accept_failures_total",
            "accept() failures (file descriptors exhausted, ...); retried after a short pause.",
            live.edge.accept_failures);
    Counter(out, "microcare_http_connections_evicted_total",
            "Idle or slow connections closed to make room at server.maxConnections.",
            live.edge.connections_evicted);
    Counter(out, "microcare_http_connections_refused_total",
            "Connections closed at once: the limit and the probes' reserve were both full.",
            live.edge.connections_refused);
    Counter(out, "microcare_reloads_applied_total",
            "Reloads (SIGHUP, POST /admin/reload) that put a rule pack in force.", reloads_applied);
    Counter(out, "microcare_reloads_refused_total",
            "Reloads refused: the old rule pack and configuration stayed in force.",
            reloads_refused);
    Counter(out, "microcare_polls_total", "Polls of the EHR's search API run.", polls);
    Counter(out, "microcare_poll_failures_total",
            "Polls that failed (retried with backoff; /readyz says degraded).", poll_failures);
    Counter(out, "microcare_poll_requests_total", "Search pages the polls asked of the EHR.",
            poll_requests);
    const auto by_outcome = [&out](const char* name, const char* help, std::uint64_t queued,
                                   std::uint64_t seen, std::uint64_t skipped) {
        Header(out, name, help, "counter");
        for (const auto& [outcome, count] :
             {std::pair<const char*, std::uint64_t>{"queued", queued},
              {"seen", seen},
              {"skipped", skipped}}) {
            out += name;
            out += "{outcome=\"";
            out += outcome;
            out += "\"} ";
            out += std::to_string(count);
            out += '\n';
        }
    };
    by_outcome("microcare_poll_encounters_total",
               "Encounters the polls read, by what became of them.", poll_encounters_queued,
               poll_encounters_seen, poll_encounters_skipped);
    by_outcome("microcare_poll_appointments_total",
               "Appointments the polls read (pre-visit screening), by what became of them.",
               poll_appointments_queued, poll_appointments_seen, poll_appointments_skipped);
    Counter(out, "microcare_jobs_queued", "Jobs waiting.", live.queued, "gauge");
    Counter(out, "microcare_jobs_running", "Jobs being worked on.", live.running, "gauge");
    Counter(out, "microcare_jobs_dead", "Jobs in the dead-letter state.", live.dead, "gauge");
    Counter(out, "microcare_oldest_waiting_job_age_seconds",
            "Age of the oldest job not yet done or dead (0: none).", live.oldest_waiting_seconds,
            "gauge");
    Counter(out, "microcare_ehr_up",
            "1 unless the last exchange with the EHR found it unreachable or failing (5xx).",
            live.ehr_up ? 1 : 0, "gauge");
    out +=
        "# HELP microcare_rule_pack_info The rule pack in force.\n"
        "# TYPE microcare_rule_pack_info gauge\n"
        "microcare_rule_pack_info{id=\"" +
        LabelValue(live.pack.id) + "\",version=\"" + LabelValue(live.pack.version) +
        "\",sha256=\"" + LabelValue(live.pack.sha256) + "\"} 1\n";
    return out;
}

}  // namespace microcare::adapter
