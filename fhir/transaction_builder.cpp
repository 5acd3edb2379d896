#include "fhir/transaction_builder.hpp"

#include <cstdint>

namespace microcare::fhir {
namespace {

std::string Text(const LocalInstant& at) { return FormatInstant(at.instant, at.offset_minutes); }

std::string FullUrl(const IdentifierValue& identifier) {
    return "urn:uuid:" + DeterministicUuid(identifier.system + "|" + identifier.value);
}

void WriteReference(JsonWriter& out, std::string_view key, std::string_view reference) {
    out.Key(key);
    out.StartObject();
    out.Field("reference", reference);
    out.EndObject();
}

void WriteCoding(JsonWriter& out, const CodingValue& coding) {
    out.StartObject();
    out.Field("system", coding.system);
    out.Field("code", coding.code);
    if (!coding.display.empty()) out.Field("display", coding.display);
    out.EndObject();
}

void WriteConcept(JsonWriter& out, std::string_view key, const std::vector<CodingValue>& codings,
                  std::string_view text) {
    out.Key(key);
    out.StartObject();
    if (!codings.empty()) {
        out.Key("coding");
        out.StartArray();
        for (const CodingValue& coding : codings) WriteCoding(out, coding);
        out.EndArray();
    }
    if (!text.empty()) out.Field("text", text);
    out.EndObject();
}

void WritePeriod(JsonWriter& out, std::string_view key, const LocalInstant& start,
                 const LocalInstant& end) {
    out.Key(key);
    out.StartObject();
    out.Field("start", Text(start));
    out.Field("end", Text(end));
    out.EndObject();
}

void WriteNarrative(JsonWriter& out, std::string_view html_body) {
    out.Key("text");
    out.StartObject();
    out.Field("status", "generated");
    out.Field("div",
              "<div xmlns=\"http://www.w3.org/1999/xhtml\">" + std::string(html_body) + "</div>");
    out.EndObject();
}

// How the resources of one Bundle refer to each other, computed once: by fullUrl for what is
// created, by `Type/id` for what is already on the EHR; for a digest, by identifier, so that a
// resource's digest does not depend on where its siblings stand.
struct EntryUrls {
    bool digest = false;
    std::string care_plan;
    std::vector<std::string> issues;
    std::string task;

    EntryUrls(const TransactionValue& value, bool for_digest) : digest(for_digest) {
        if (value.care_plan)
            care_plan = Url(value.care_plan->identifier, value.care_plan->on_ehr, "CarePlan");
        for (const DetectedIssueValue& issue : value.issues)
            issues.push_back(Url(issue.identifier, issue.on_ehr, "DetectedIssue"));
        if (value.task) task = Url(value.task->identifier, value.task->on_ehr, "Task");
    }

private:
    std::string Url(const IdentifierValue& identifier, const OnEhr& on_ehr,
                    std::string_view type) const {
        if (digest) return identifier.system + "|" + identifier.value;
        if (on_ehr.write == OnEhr::Write::kCreate) return FullUrl(identifier);
        return std::string(type) + "/" + on_ehr.id;
    }
};

void WriteTag(JsonWriter& out, std::string_view system, std::string_view version,
              std::string_view code, std::string_view display) {
    out.StartObject();
    out.Field("system", system);
    if (!version.empty()) out.Field("version", version);
    out.Field("code", code);
    if (!display.empty()) out.Field("display", display);
    out.EndObject();
}

// The pack's tags: its id and version, then its SHA-256.
void WritePackTags(JsonWriter& out, const Provenance& provenance) {
    WriteTag(out, provenance.pack_tag.system, provenance.pack_version, provenance.pack_tag.code,
             provenance.pack_tag.display);
    if (!provenance.pack_sha256.empty())
        WriteTag(out, kPackSha256TagSystem, {}, provenance.pack_sha256, {});
}

bool IsPackOrDigestTag(const Provenance& provenance, std::string_view system) {
    return system == provenance.pack_tag.system || system == kPackSha256TagSystem ||
           system == kDigestTagSystem;
}

void WriteMeta(JsonWriter& out, const Provenance& provenance, std::string_view digest) {
    out.Key("meta");
    out.StartObject();
    out.Key("tag");
    out.StartArray();
    WritePackTags(out, provenance);
    if (!digest.empty()) WriteTag(out, kDigestTagSystem, {}, digest, {});
    out.EndArray();
    out.EndObject();
}

// Opens a transaction entry and the resource's common header; the caller writes the rest.
// With `digest` empty (computing one), only the resource is written, its meta without the
// digest.
void BeginEntry(JsonWriter& out, const Provenance& provenance, std::string_view resource_type,
                const IdentifierValue& identifier, const OnEhr& on_ehr, std::string_view digest) {
    out.StartObject();
    if (!digest.empty()) {
        out.Field("fullUrl", FullUrl(identifier));
        out.Key("resource");
        out.StartObject();
    }
    out.Field("resourceType", resource_type);
    if (!digest.empty() && on_ehr.write == OnEhr::Write::kUpdate) out.Field("id", on_ehr.id);
    WriteMeta(out, provenance, digest);
    out.Key("identifier");
    out.StartArray();
    out.StartObject();
    out.Field("system", identifier.system);
    out.Field("value", identifier.value);
    out.EndObject();
    out.EndArray();
}

void WriteRequest(JsonWriter& out, std::string_view resource_type,
                  const IdentifierValue* identifier, const OnEhr& on_ehr) {
    out.Key("request");
    out.StartObject();
    if (on_ehr.write == OnEhr::Write::kUpdate) {
        out.Field("method", "PUT");
        out.Field("url", std::string(resource_type) + "/" + on_ehr.id);
        out.Field("ifMatch", "W/\"" + on_ehr.version_id + "\"");
    } else {
        out.Field("method", "POST");
        out.Field("url", resource_type);
        out.Field("ifNoneExist", "identifier=" + identifier->system + "|" + identifier->value);
    }
    out.EndObject();
}

void EndEntry(JsonWriter& out, std::string_view resource_type, const IdentifierValue& identifier,
              const OnEhr& on_ehr, bool digest) {
    if (digest) {
        out.EndObject();
        return;
    }
    out.EndObject();  // resource
    WriteRequest(out, resource_type, &identifier, on_ehr);
    out.EndObject();  // entry
}

// Writes a time only when it is not a digest: when a resource was written is not what it says.
// An update keeps the time of the first writing.
void WriteTime(JsonWriter& out, std::string_view key, const LocalInstant& at, const OnEhr& on_ehr,
               const EntryUrls& urls) {
    if (urls.digest) return;
    out.Field(key, on_ehr.first_written.empty() ? Text(at) : on_ehr.first_written);
}

void WriteCarePlan(JsonWriter& out, const TransactionValue& value, const EntryUrls& urls,
                   std::string_view digest) {
    const CarePlanValue& plan = *value.care_plan;
    BeginEntry(out, value.provenance, "CarePlan", plan.identifier, plan.on_ehr, digest);
    std::string html = "<p><b>" + EscapeXhtml(plan.title) + "</b></p><p>" +
                       EscapeXhtml(plan.description) + "</p><ul>";
    for (const ActivityValue& activity : plan.activities) {
        html += "<li>" + EscapeXhtml(activity.code.display) + " (" + activity.status + ", " +
                FormatDate(activity.start.instant, activity.start.offset_minutes) + " to " +
                FormatDate(activity.end.instant, activity.end.offset_minutes) + ")</li>";
    }
    html += "</ul>";
    WriteNarrative(out, html);
    out.Key("instantiatesUri");
    out.StartArray();
    out.String(value.provenance.pack_uri);
    out.EndArray();
    out.Field("status", "active");
    out.Field("intent", "plan");
    out.Field("title", plan.title);
    out.Field("description", plan.description);
    WriteReference(out, "subject", plan.subject);
    if (!plan.encounter.empty()) WriteReference(out, "encounter", plan.encounter);
    WritePeriod(out, "period", plan.period_start, plan.period_end);
    WriteTime(out, "created", plan.created, plan.on_ehr, urls);
    if (!value.issues.empty()) {
        out.Key("supportingInfo");
        out.StartArray();
        for (const std::string& url : urls.issues) {
            out.StartObject();
            out.Field("reference", url);
            out.EndObject();
        }
        out.EndArray();
    }
    out.Key("activity");
    out.StartArray();
    for (const ActivityValue& activity : plan.activities) {
        out.StartObject();
        out.Key("detail");
        out.StartObject();
        if (!activity.kind.empty()) out.Field("kind", activity.kind);
        WriteConcept(out, "code", {activity.code}, {});
        out.Field("status", activity.status);
        WritePeriod(out, "scheduledPeriod", activity.start, activity.end);
        out.Field("description", activity.description);
        out.EndObject();
        out.EndObject();
    }
    out.EndArray();
    EndEntry(out, "CarePlan", plan.identifier, plan.on_ehr, digest.empty());
}

void WriteDetectedIssue(JsonWriter& out, const Provenance& provenance,
                        const DetectedIssueValue& issue, const EntryUrls& urls,
                        std::string_view digest) {
    BeginEntry(out, provenance, "DetectedIssue", issue.identifier, issue.on_ehr, digest);
    WriteNarrative(out, "<p><b>" + EscapeXhtml(issue.title) + "</b> (" + issue.severity +
                            ")</p><p>" + EscapeXhtml(issue.detail) + "</p>");
    if (!urls.digest) out.Field("status", issue.status);
    WriteConcept(out, "code", issue.codes, issue.title);
    out.Field("severity", issue.severity);
    WriteReference(out, "patient", issue.patient);
    WriteTime(out, "identifiedDateTime", issue.identified, issue.on_ehr, urls);
    if (!issue.implicated.empty()) {
        out.Key("implicated");
        out.StartArray();
        for (const std::string& reference : issue.implicated) {
            out.StartObject();
            out.Field("reference", reference);
            out.EndObject();
        }
        out.EndArray();
    }
    out.Field("detail", issue.detail);
    EndEntry(out, "DetectedIssue", issue.identifier, issue.on_ehr, digest.empty());
}

void WriteTask(JsonWriter& out, const TransactionValue& value, const EntryUrls& urls,
               std::string_view digest) {
    const TaskValue& task = *value.task;
    BeginEntry(out, value.provenance, "Task", task.identifier, task.on_ehr, digest);
    WriteNarrative(
        out, "<p>" + EscapeXhtml(task.description) + "</p><p>" + EscapeXhtml(task.reason) + "</p>");
    out.Field("status", "requested");
    out.Field("intent", "order");
    out.Field("priority", task.priority);
    WriteConcept(out, "code",
                 {{"http://hl7.org/fhir/CodeSystem/task-code", "approve",
                   "Activate/approve the focal resource"}},
                 "Clinician review of microneedling contraindications");
    out.Field("description", task.description);
    if (value.care_plan) {
        WriteReference(out, "focus", urls.care_plan);
    } else if (!task.focus.empty()) {
        WriteReference(out, "focus", task.focus);
    }
    WriteReference(out, "for", task.patient);
    if (!task.encounter.empty()) WriteReference(out, "encounter", task.encounter);
    WriteTime(out, "authoredOn", task.authored, task.on_ehr, urls);
    if (task.due) {
        // Content, not a time of writing: a moved appointment moves it, and the digest sees it.
        out.Key("restriction");
        out.StartObject();
        out.Key("period");
        out.StartObject();
        out.Field("end", Text(*task.due));
        out.EndObject();
        out.EndObject();
    }
    WriteConcept(out, "reasonCode", {}, task.reason);
    if (!value.issues.empty()) {
        out.Key("input");
        out.StartArray();
        for (const std::string& url : urls.issues) {
            out.StartObject();
            WriteConcept(out, "type", {}, "DetectedIssue");
            WriteReference(out, "valueReference", url);
            out.EndObject();
        }
        out.EndArray();
    }
    EndEntry(out, "Task", task.identifier, task.on_ehr, digest.empty());
}

// The resource as read, with status `cancelled`, the retiring pack's tag and the note; what
// MicroCare did not write on it (other tags, extensions, a clinician's edits) is kept.
void WriteRetired(JsonWriter& out, const Provenance& provenance, const RetiredValue& retired) {
    const bool issue = retired.resource_type == "DetectedIssue";
    const std::string note_key = issue ? "detail" : "statusReason";
    out.StartObject();
    out.Key("resource");
    out.StartObject();
    bool wrote_note = false;
    retired.resource.ForEachMember([&](std::string_view name, Node member) {
        if (name == "status" || name == "text") return;
        if (name == "meta") {
            out.Key("meta");
            out.StartObject();
            out.Key("tag");
            out.StartArray();
            WritePackTags(out, provenance);
            const Node tags = member["tag"];
            for (std::size_t i = 0; tags.IsArray() && i < tags.Size(); ++i) {
                if (IsPackOrDigestTag(provenance, tags[i]["system"].String())) continue;
                out.Value(tags[i]);
            }
            out.EndArray();
            out.EndObject();
            return;
        }
        if (name == note_key) {
            wrote_note = true;
            if (issue) {
                out.Field("detail", std::string(member.String()) + " " + retired.note);
            } else {
                WriteConcept(out, "statusReason", {}, retired.note);
            }
            return;
        }
        out.Key(name);
        out.Value(member);
    });
    if (!wrote_note) {
        if (issue) {
            out.Field("detail", retired.note);
        } else {
            WriteConcept(out, "statusReason", {}, retired.note);
        }
    }
    WriteNarrative(out, "<p><b>Cancelled.</b> " + EscapeXhtml(retired.note) + "</p>");
    out.Field("status", "cancelled");
    out.EndObject();  // resource
    OnEhr on_ehr{OnEhr::Write::kUpdate, retired.id, retired.version_id, {}, {}};
    WriteRequest(out, retired.resource_type, nullptr, on_ehr);
    out.EndObject();  // entry
}

std::string Hash(JsonWriter& out) {
    // 128 bits of FNV-1a tell one version of a resource from the next; nothing here needs to
    // resist someone forging a collision (the tag only spares a write).
    return DeterministicUuid(out.Take());
}

}  // namespace

bool TransactionValue::HasWrites() const {
    auto writes = [](const OnEhr& on_ehr) { return on_ehr.write != OnEhr::Write::kNone; };
    if (care_plan && writes(care_plan->on_ehr)) return true;
    if (task && writes(task->on_ehr)) return true;
    for (const DetectedIssueValue& issue : issues)
        if (writes(issue.on_ehr)) return true;
    return !retired.empty();
}

std::vector<TransactionValue::EntryWrite> TransactionValue::EntryWrites() const {
    std::vector<EntryWrite> entries;
    auto add = [&entries](const OnEhr& on_ehr, const std::string& patient) {
        if (on_ehr.write == OnEhr::Write::kNone) return;
        entries.push_back({on_ehr.write == OnEhr::Write::kUpdate, patient});
    };
    if (care_plan) add(care_plan->on_ehr, care_plan->subject);
    for (const DetectedIssueValue& issue : issues) add(issue.on_ehr, issue.patient);
    if (task) add(task->on_ehr, task->patient);
    for (const RetiredValue& r : retired) {
        entries.push_back({true, std::string(PatientOfWritten(r.resource))});
    }
    return entries;
}

std::string CarePlanDigest(const TransactionValue& value) {
    JsonWriter out;
    WriteCarePlan(out, value, EntryUrls(value, true), {});
    return Hash(out);
}

std::string IssueDigest(const TransactionValue& value, std::size_t index) {
    JsonWriter out;
    WriteDetectedIssue(out, value.provenance, value.issues[index], EntryUrls(value, true), {});
    return Hash(out);
}

std::string TaskDigest(const TransactionValue& value) {
    JsonWriter out;
    WriteTask(out, value, EntryUrls(value, true), {});
    return Hash(out);
}

void WriteTransaction(JsonWriter& out, const TransactionValue& value) {
    out.StartObject();
    out.Field("resourceType", "Bundle");
    out.Field("type", "transaction");
    out.Key("entry");
    out.StartArray();
    const EntryUrls urls(value, false);
    // The order of EntryWrites().
    const auto writes = [](const OnEhr& on_ehr) { return on_ehr.write != OnEhr::Write::kNone; };
    // A digest the revision computed is the one written: computing it again would serialise
    // the resource once more for the same answer.
    const auto digest = [](const OnEhr& on_ehr, auto compute) {
        return on_ehr.digest.empty() ? compute() : on_ehr.digest;
    };
    if (value.care_plan && writes(value.care_plan->on_ehr)) {
        WriteCarePlan(out, value, urls,
                      digest(value.care_plan->on_ehr, [&] { return CarePlanDigest(value); }));
    }
    for (std::size_t i = 0; i < value.issues.size(); ++i) {
        if (!writes(value.issues[i].on_ehr)) continue;
        WriteDetectedIssue(out, value.provenance, value.issues[i], urls,
                           digest(value.issues[i].on_ehr, [&] { return IssueDigest(value, i); }));
    }
    if (value.task && writes(value.task->on_ehr)) {
        WriteTask(out, value, urls, digest(value.task->on_ehr, [&] { return TaskDigest(value); }));
    }
    for (const RetiredValue& retired : value.retired) WriteRetired(out, value.provenance, retired);
    out.EndArray();
    out.EndObject();
}

std::string_view PatientOfWritten(Node resource) {
    const std::string_view type = resource["resourceType"].String();
    const char* element = type == "CarePlan" ? "subject" : type == "Task" ? "for" : "patient";
    return resource[element]["reference"].String();
}

std::string DeterministicUuid(std::string_view key) {
    // Two FNV-1a passes with different offsets give 128 bits; enough to keep the fullUrls of
    // one Bundle apart, which is all they are for.
    auto fnv = [key](std::uint64_t hash) {
        for (unsigned char c : key) {
            hash ^= c;
            hash *= 0x100000001b3ULL;
        }
        return hash;
    };
    std::uint64_t high = fnv(0xcbf29ce484222325ULL);
    std::uint64_t low = fnv(0x84222325cbf29ce4ULL ^ high);
    high = (high & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
    low = (low & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;    // RFC 4122 variant
    static constexpr char kHex[] = "0123456789abcdef";
    std::string uuid(36, '-');
    std::size_t at = 0;
    for (int half = 0; half < 2; ++half) {
        const std::uint64_t bits = half == 0 ? high : low;
        for (int nibble = 15; nibble >= 0; --nibble) {
            if (at == 8 || at == 13 || at == 18 || at == 23) ++at;
            uuid[at++] = kHex[(bits >> (nibble * 4)) & 0xf];
        }
    }
    return uuid;
}

std::string EscapeXhtml(std::string_view text) {
    std::string result;
    result.reserve(text.size() + 16);
    std::size_t from = 0;
    for (auto at = text.find_first_of("&<>"); at != std::string_view::npos;
         at = text.find_first_of("&<>", from)) {
        result.append(text, from, at - from);
        result += text[at] == '&' ? "&amp;" : text[at] == '<' ? "&lt;" : "&gt;";
        from = at + 1;
    }
    result.append(text, from);
    return result;
}

}  // namespace microcare::fhir
