#include "adapter/audit/audit_query.hpp"

#include <fstream>
#include <set>

#include "adapter/audit/audit_file_set.hpp"

namespace microcare::adapter {
namespace {

// Calls `fn(record_at)` for each readable record of the trail, in order.
template <typename Fn>
void ForEachRecord(const std::string& path,
                   const std::function<void(const std::string&)>& unreadable, Fn&& fn) {
    for (const TrailFile& file : ListTrailFiles(path).files) {
        std::ifstream in(file.path, std::ios::binary);
        std::string line;
        std::size_t number = 0;
        while (std::getline(in, line)) {
            ++number;
            if (in.eof()) break;  // an unfinished last line is no record
            std::string why;
            auto record = ParseRecordLine(line, why);
            if (!record) {
                if (unreadable) unreadable(file.name + ":" + std::to_string(number));
                continue;
            }
            fn(AuditRecordAt{std::move(*record), line, file.name, number});
        }
    }
}

bool RuleIn(std::string_view findings, std::string_view rule) {
    // `A8:absolute@Condition/c1 B2:relative@...`: a rule id before each colon.
    std::size_t from = 0;
    while (from < findings.size()) {
        std::size_t end = findings.find(' ', from);
        if (end == std::string_view::npos) end = findings.size();
        const std::string_view token = findings.substr(from, end - from);
        if (token.substr(0, token.find(':')) == rule) return true;
        from = end + 1;
    }
    return false;
}

bool InPeriod(const AuditRecord& record, const AuditQuery& query) {
    if (!query.since && !query.until) return true;
    auto ts = fhir::DateTime::Parse(record.ts);
    if (!ts) return false;
    if (query.since && ts->Latest() < *query.since) return false;
    if (query.until && ts->Earliest() > *query.until) return false;
    return true;
}

}  // namespace

std::string TypedReference(std::string_view text, std::string_view type) {
    if (auto history = text.find("/_history/"); history != std::string_view::npos) {
        text = text.substr(0, history);
    }
    while (!text.empty() && text.back() == '/') text.remove_suffix(1);
    const auto last = text.rfind('/');
    if (last == std::string_view::npos) return std::string(type) + "/" + std::string(text);
    const auto before = text.rfind('/', last - 1);
    return std::string(before == std::string_view::npos || last == 0 ? text
                                                                     : text.substr(before + 1));
}

bool Matches(const AuditRecord& record, const AuditQuery& query) {
    if (record.seq <= query.after_seq || !InPeriod(record, query)) return false;
    if (!query.patient.empty()) {
        const std::string_view patient = record.Get("patient");
        if (patient.empty() ||
            TypedReference(patient, "Patient") != TypedReference(query.patient, "Patient")) {
            return false;
        }
    }
    if (!query.encounter.empty()) {
        const std::string_view encounter = record.Get("encounter");
        if (encounter.empty() || TypedReference(encounter, "Encounter") !=
                                     TypedReference(query.encounter, "Encounter")) {
            return false;
        }
    }
    if (!query.rule.empty() && record.Get("rule") != query.rule &&
        !RuleIn(record.Get("findings"), query.rule)) {
        return false;
    }
    return true;
}

std::vector<AuditRecordAt> QueryTrail(const std::string& path, const AuditQuery& query,
                                      const std::function<void(const std::string&)>& unreadable) {
    const bool narrows = !query.patient.empty() || !query.encounter.empty() || !query.rule.empty();
    // First the jobs of the records that answer; then those records and the rest of their jobs.
    std::set<std::string> jobs;
    if (narrows) {
        ForEachRecord(path, unreadable, [&](const AuditRecordAt& at) {
            if (Matches(at.record, query) && !at.record.Get("job").empty()) {
                jobs.insert(std::string(at.record.Get("job")));
            }
        });
    }
    std::vector<AuditRecordAt> answer;
    ForEachRecord(path, narrows ? std::function<void(const std::string&)>() : unreadable,
                  [&](AuditRecordAt&& at) {
                      const bool same_job = !at.record.Get("job").empty() &&
                                            jobs.count(std::string(at.record.Get("job"))) > 0 &&
                                            at.record.seq > query.after_seq &&
                                            InPeriod(at.record, query);
                      if (Matches(at.record, query) || same_job) answer.push_back(std::move(at));
                  });
    return answer;
}

}  // namespace microcare::adapter
