#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "adapter/audit/audit_chain.hpp"
#include "fhir/date_time.hpp"

namespace microcare::adapter {

// An auditor's question: what happened for this patient, this encounter, under this rule, in
// this period. Empty parts do not narrow the answer.
struct AuditQuery {
    std::string patient;    // `Patient/id` or `id`, matched against a record's `patient`
    std::string encounter;  // `Encounter/id` or `id`, matched against `encounter`
    std::string rule;       // a rule id, matched against `rule` and the rules in `findings`
    std::optional<fhir::Instant> since;
    std::optional<fhir::Instant> until;
    std::uint64_t after_seq = 0;  // only records after this one
};

struct AuditRecordAt {
    AuditRecord record;
    std::string line;  // the line as it is in the file, sealed
    std::string file;  // the file's name
    std::size_t line_number = 0;
};

// Whether a record answers the query by itself.
bool Matches(const AuditRecord& record, const AuditQuery& query);

// Every record of the trail at `path` (rotated files first) that answers the query, oldest
// first, with the other records of the same jobs (a decision names the encounter; the job's
// outcome names the job), so that one command tells the whole story. Lines that are not
// records are passed to `unreadable` as `file:line`.
std::vector<AuditRecordAt> QueryTrail(const std::string& path, const AuditQuery& query,
                                      const std::function<void(const std::string&)>& unreadable);

// The same reference written as `Type/id` whatever its form: `id`, `Type/id`, an absolute URL,
// with or without `/_history/vid`.
std::string TypedReference(std::string_view text, std::string_view type);

}  // namespace microcare::adapter
