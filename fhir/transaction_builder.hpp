#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fhir/date_time.hpp"
#include "fhir/json.hpp"

namespace microcare::fhir {

// What MicroCare writes, described in FHIR terms; WriteTransaction turns it into an R4
// transaction Bundle. A resource new to the EHR is a conditional create on its identifier, so
// that posting the same Bundle twice never makes a second resource; one MicroCare wrote before
// is replaced by an update guarded by If-Match on the version read, so that of two revisions
// racing only one lands (the other is refused and re-reads).

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
    std::string pack_sha256;   // the pack's content hash: a second tag (kPackSha256TagSystem)
    std::string pack_uri;      // CarePlan.instantiatesUri
};

// The tag that carries the SHA-256 of the pack a resource was written under: two edits of a
// pack under one version are told apart on the EHR too.
inline constexpr std::string_view kPackSha256TagSystem =
    "https://microcare.example/fhir/CodeSystem/rule-pack-sha256";

// Where a resource stands on the EHR, as the revision found it.
struct OnEhr {
    enum class Write {
        kCreate,  // not there: a conditional create
        kUpdate,  // there and different: a PUT with If-Match on `version_id`
        kNone,    // there and the same: not written; the others refer to it by `id`
    };
    Write write = Write::kCreate;
    std::string id;
    std::string version_id;
    // When the resource was first written (CarePlan.created, DetectedIssue.identifiedDateTime,
    // Task.authoredOn) as the EHR holds it: an update keeps it, so that revising a finding
    // does not make it look newly found.
    std::string first_written;
    // The content digest the resource is written with, when its revision computed it already
    // (rules::ReviseTransaction compares it with what the EHR holds); empty: computed when
    // the transaction is written.
    std::string digest;
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
    OnEhr on_ehr;
};

struct DetectedIssueValue {
    IdentifierValue identifier;
    std::vector<CodingValue> codes;  // v3-ActCode alert, then MicroCare's rule code
    std::string title;
    std::string severity;          // high | moderate | low
    std::string status = "final";  // "amended" when a revision changed the severity
    std::string patient;
    LocalInstant identified;
    std::vector<std::string> implicated;
    std::string detail;
    OnEhr on_ehr;
};

struct TaskValue {
    IdentifierValue identifier;
    std::string priority;  // routine | urgent
    std::string description;
    std::string reason;
    std::string patient;
    std::string encounter;
    // What the review is about when there is no CarePlan (the transaction's CarePlan else):
    // the booked Appointment of a pre-visit screening.
    std::string focus;
    // By when the review is due (Task.restriction.period.end): the appointment's start.
    std::optional<LocalInstant> due;
    LocalInstant authored;
    OnEhr on_ehr;
};

// A resource MicroCare wrote before that the assessment no longer supports: written back as it
// is on the EHR, with status `cancelled`, the retiring pack's tag and `note` (in
// DetectedIssue.detail, which R4 gives no note element, or in Task.statusReason).
struct RetiredValue {
    std::string resource_type;  // DetectedIssue | Task
    std::string id;
    std::string version_id;
    Node resource;  // as read; must outlive the writing
    std::string note;
};

struct TransactionValue {
    Provenance provenance;
    // How every identifier value written for the treatment begins ("12:" for Encounter/12,
    // "appointment-7:" for a screening of Appointment/7): what a revision calls its own.
    std::string key_prefix;
    std::optional<CarePlanValue> care_plan;
    std::vector<DetectedIssueValue> issues;
    std::optional<TaskValue> task;
    std::vector<RetiredValue> retired;

    // Whether anything is to be written (a revision that found no difference writes nothing).
    bool HasWrites() const;
    // Each entry WriteTransaction writes, in the entries' order: an update (or a create), and
    // its patient ("Patient/7").
    struct EntryWrite {
        bool update = false;
        std::string patient;
        bool operator==(const EntryWrite&) const = default;
    };
    std::vector<EntryWrite> EntryWrites() const;
};

// Writes the transaction Bundle. The resources refer to each other by deterministic
// `urn:uuid:` fullUrls derived from their identifiers.
void WriteTransaction(JsonWriter& out, const TransactionValue& value);

// What a resource says, for telling whether a revision changes it: a hash of what
// WriteTransaction writes for it, without the times of writing, its status and its place on the
// EHR (references to its siblings count by identifier), with the pack's tags (a resource
// written under another pack is re-tagged on revision). WriteTransaction labels each resource
// with it (meta.tag, kDigestTagSystem); `index` picks the DetectedIssue.
inline constexpr std::string_view kDigestTagSystem =
    "https://microcare.example/fhir/CodeSystem/content-digest";
std::string CarePlanDigest(const TransactionValue& value);
std::string IssueDigest(const TransactionValue& value, std::size_t index);
std::string TaskDigest(const TransactionValue& value);

// The patient a resource MicroCare writes refers to, as read back from the EHR:
// CarePlan.subject, DetectedIssue.patient, Task.for ("Patient/7").
std::string_view PatientOfWritten(Node resource);

// A version-4-shaped UUID computed from `key` (not random: the same key always gives the same
// UUID, which keeps a replayed transaction byte-identical).
std::string DeterministicUuid(std::string_view key);

// `&`, `<` and `>` escaped for XHTML narrative.
std::string EscapeXhtml(std::string_view text);

}  // namespace microcare::fhir
