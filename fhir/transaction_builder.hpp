#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/date_time.hpp"
#include "fhir/json.hpp"

namespace microcare::fhir {

// What MicroCare writes, described in FHIR terms; WriteTransaction turns it into an R4
// transaction Bundle in which every resource is a conditional create on its identifier, so
// that posting the same Bundle twice never makes a second resource.

struct CodingValue {
    std::string system;
    std::string code;
    std::string display;
};

struct IdentifierValue {
    std::string system;
    std::string value;
};

// A clock reading written with the encounter's offset.
struct LocalInstant {
    Instant instant;
    int offset_minutes = 0;
};

// Labels every resource with the rule pack that made it.
struct Provenance {
    CodingValue pack_tag;      // system, code = pack id, display = pack title
    std::string pack_version;  // Coding.version of the tag
    std::string pack_uri;      // CarePlan.instantiatesUri
};

struct ActivityValue {
    CodingValue code;
    std::string kind;    // care-plan-activity-kind, or empty
    std::string status;  // care-plan-activity-status
    std::string description;
    LocalInstant start;
    LocalInstant end;
};

struct CarePlanValue {
    IdentifierValue identifier;
    std::string title;
    std::string description;
    std::string subject;
    std::string encounter;
    LocalInstant period_start;
    LocalInstant period_end;
    LocalInstant created;
    std::vector<ActivityValue> activities;
};

struct DetectedIssueValue {
    IdentifierValue identifier;
    std::vector<CodingValue> codes;  // v3-ActCode alert, then MicroCare's rule code
    std::string title;
    std::string severity;  // high | moderate | low
    std::string patient;
    LocalInstant identified;
    std::vector<std::string> implicated;
    std::string detail;
};

struct TaskValue {
    IdentifierValue identifier;
    std::string priority;  // routine | urgent
    std::string description;
    std::string reason;
    std::string patient;
    std::string encounter;
    LocalInstant authored;
};

struct TransactionValue {
    Provenance provenance;
    std::optional<CarePlanValue> care_plan;
    std::vector<DetectedIssueValue> issues;
    std::optional<TaskValue> task;
};

// Writes the transaction Bundle. The resources refer to each other by deterministic
// `urn:uuid:` fullUrls derived from their identifiers.
void WriteTransaction(JsonWriter& out, const TransactionValue& value);

// A version-4-shaped UUID computed from `key` (not random: the same key always gives the same
// UUID, which keeps a replayed transaction byte-identical).
std::string DeterministicUuid(std::string_view key);

// `&`, `<` and `>` escaped for XHTML narrative.
std::string EscapeXhtml(std::string_view text);

}  // namespace microcare::fhir
