#include "adapter/metrics.hpp"

#include <string_view>

namespace microcare::adapter {
namespace {

void Counter(std::string& out, const char* name, const char* help, std::uint64_t value,
             const char* type = "counter") {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
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
    Counter(out, "microcare_jobs_retried_total", "Job attempts scheduled again.", jobs_retried);
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
    Counter(out, "microcare_jobs_queued", "Jobs waiting.", live.queued, "gauge");
    Counter(out, "microcare_jobs_running", "Jobs being worked on.", live.running, "gauge");
    Counter(out, "microcare_jobs_dead", "Jobs in the dead-letter state.", live.dead, "gauge");
    out +=
        "# HELP microcare_rule_pack_info The rule pack in force.\n"
        "# TYPE microcare_rule_pack_info gauge\n"
        "microcare_rule_pack_info{id=\"" +
        LabelValue(live.pack.id) + "\",version=\"" + LabelValue(live.pack.version) +
        "\",sha256=\"" + LabelValue(live.pack.sha256) + "\"} 1\n";
    return out;
}

}  // namespace microcare::adapter
