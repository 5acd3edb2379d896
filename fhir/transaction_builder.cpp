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

// The fullUrls of the Bundle's entries, computed once: resources refer to each other by them.
struct EntryUrls {
    std::string care_plan;
    std::vector<std::string> issues;
    std::string task;

    explicit EntryUrls(const TransactionValue& value) {
        if (value.care_plan) care_plan = FullUrl(value.care_plan->identifier);
        for (const DetectedIssueValue& issue : value.issues)
            issues.push_back(FullUrl(issue.identifier));
        if (value.task) task = FullUrl(value.task->identifier);
    }
};

// Opens a transaction entry and the resource's common header; the caller writes the rest.
void BeginEntry(JsonWriter& out, const Provenance& provenance, std::string_view resource_type,
                const IdentifierValue& identifier, std::string_view full_url) {
    out.StartObject();
    out.Field("fullUrl", full_url);
    out.Key("resource");
    out.StartObject();
    out.Field("resourceType", resource_type);
    out.Key("meta");
    out.StartObject();
    out.Key("tag");
    out.StartArray();
    out.StartObject();
    out.Field("system", provenance.pack_tag.system);
    out.Field("version", provenance.pack_version);
    out.Field("code", provenance.pack_tag.code);
    if (!provenance.pack_tag.display.empty()) out.Field("display", provenance.pack_tag.display);
    out.EndObject();
    out.EndArray();
    out.EndObject();
    out.Key("identifier");
    out.StartArray();
    out.StartObject();
    out.Field("system", identifier.system);
    out.Field("value", identifier.value);
    out.EndObject();
    out.EndArray();
}

void EndEntry(JsonWriter& out, std::string_view resource_type, const IdentifierValue& identifier) {
    out.EndObject();  // resource
    out.Key("request");
    out.StartObject();
    out.Field("method", "POST");
    out.Field("url", resource_type);
    out.Field("ifNoneExist", "identifier=" + identifier.system + "|" + identifier.value);
    out.EndObject();
    out.EndObject();  // entry
}

void WriteCarePlan(JsonWriter& out, const TransactionValue& value, const EntryUrls& urls) {
    const CarePlanValue& plan = *value.care_plan;
    BeginEntry(out, value.provenance, "CarePlan", plan.identifier, urls.care_plan);
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
    out.Field("created", Text(plan.created));
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
    EndEntry(out, "CarePlan", plan.identifier);
}

void WriteDetectedIssue(JsonWriter& out, const Provenance& provenance,
                        const DetectedIssueValue& issue, std::string_view full_url) {
    BeginEntry(out, provenance, "DetectedIssue", issue.identifier, full_url);
    WriteNarrative(out, "<p><b>" + EscapeXhtml(issue.title) + "</b> (" + issue.severity +
                            ")</p><p>" + EscapeXhtml(issue.detail) + "</p>");
    out.Field("status", "final");
    WriteConcept(out, "code", issue.codes, issue.title);
    out.Field("severity", issue.severity);
    WriteReference(out, "patient", issue.patient);
    out.Field("identifiedDateTime", Text(issue.identified));
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
    EndEntry(out, "DetectedIssue", issue.identifier);
}

void WriteTask(JsonWriter& out, const TransactionValue& value, const EntryUrls& urls) {
    const TaskValue& task = *value.task;
    BeginEntry(out, value.provenance, "Task", task.identifier, urls.task);
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
    if (value.care_plan) WriteReference(out, "focus", urls.care_plan);
    WriteReference(out, "for", task.patient);
    if (!task.encounter.empty()) WriteReference(out, "encounter", task.encounter);
    out.Field("authoredOn", Text(task.authored));
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
    EndEntry(out, "Task", task.identifier);
}

}  // namespace

void WriteTransaction(JsonWriter& out, const TransactionValue& value) {
    out.StartObject();
    out.Field("resourceType", "Bundle");
    out.Field("type", "transaction");
    out.Key("entry");
    out.StartArray();
    const EntryUrls urls(value);
    if (value.care_plan) WriteCarePlan(out, value, urls);
    for (std::size_t i = 0; i < value.issues.size(); ++i) {
        WriteDetectedIssue(out, value.provenance, value.issues[i], urls.issues[i]);
    }
    if (value.task) WriteTask(out, value, urls);
    out.EndArray();
    out.EndObject();
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
