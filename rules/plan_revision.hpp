#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/json.hpp"
#include "fhir/transaction_builder.hpp"
#include "rules/rule_set.hpp"

namespace microcare::rules {

// One resource MicroCare wrote before, as read back from the EHR.
struct WrittenResource {
    std::string resource_type;  // CarePlan | DetectedIssue | Task
    std::string id;
    std::string version_id;  // meta.versionId: what an update must match
    std::string identifier;  // the value of MicroCare's identifier
    std::string status;
    std::string severity;  // DetectedIssue
    std::string digest;    // the content digest tag MicroCare wrote, if any
    // CarePlan.created, DetectedIssue.identifiedDateTime or Task.authoredOn, as stored.
    std::string first_written;
    fhir::Node resource;  // as read, for retiring it
};

// `resource` as MicroCare's own (it carries an identifier in kIdentifierSystem); nullopt for
// anything else, which a revision never touches.
std::optional<WrittenResource> ReadWritten(fhir::Node resource);

// What a revision does to one resource.
enum class Change { kCreated, kUpdated, kRetired, kUnchanged };
std::string_view ToString(Change change);

struct ResourceChange {
    std::string resource_type;
    std::string identifier;
    Change change = Change::kUnchanged;
    std::string detail;  // "severity moderate -> high", "reopened", ...; ids and codes only
};

// Turns `value` (what BuildTransaction, BuildPreVisitTransaction or BuildRetirement made) into
// the difference with what MicroCare wrote before for the same treatment, `written` (others'
// resources and other treatments' are ignored, by value.key_prefix): what is absent is created,
// what differs is updated in place against the version read (a DetectedIssue whose severity
// changed becomes `amended`; one retired before is reinstated), what no longer holds is retired
// (cancelled, with a note naming `pack` and `why_retired`, or that the rule no longer finds it),
// and what is the same is left out of the Bundle. Whenever anything is written, the CarePlan
// (before a visit: the Task) is written too, against the version read: it is the treatment's
// lock, so that of two revisions racing from the same reading only one lands. Returns what
// becomes of each resource, for the audit trail.
std::vector<ResourceChange> ReviseTransaction(const RuleSet& pack, fhir::TransactionValue& value,
                                              const std::vector<WrittenResource>& written,
                                              std::string_view why_retired = {});

// `CarePlan enc-1:careplan updated; DetectedIssue enc-1:issue:R1 retired; ...`: for the audit
// trail and the job's summary (identifiers carry ids and rule ids only).
std::string DescribeChanges(const std::vector<ResourceChange>& changes);

}  // namespace microcare::rules
