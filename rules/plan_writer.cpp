#include "rules/plan_writer.hpp"

#include <cctype>
#include <map>

namespace microcare::rules {
namespace {

std::string_view SystemName(std::string_view system) {
    static const std::map<std::string_view, std::string_view> names = {
        {"http://snomed.info/sct", "SNOMED CT"},
        {"http://hl7.org/fhir/sid/icd-10-cm", "ICD-10-CM"},
        {"http://hl7.org/fhir/sid/icd-10", "ICD-10"},
        {"http://www.nlm.nih.gov/research/umls/rxnorm", "RxNorm"},
        {"http://loinc.org", "LOINC"},
        {"http://www.ama-assn.org/go/cpt", "CPT"},
        {"http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets", "HCPCS"},
        {"http://www.whocc.no/atc", "ATC"},
        {"http://fdasis.nlm.nih.gov", "UNII"},
    };
    auto it = names.find(system);
    return it == names.end() ? system : it->second;
}

std::string_view IssueCodeDisplay(std::string_view code) {
    static const std::map<std::string_view, std::string_view> displays = {
        {"COND", "Condition Alert"}, {"PREG", "Pregnancy Alert"}, {"LACT", "Lactation Alert"},
        {"ALGY", "Allergy Alert"},   {"AGE", "Age Alert"},        {"DRG", "Drug Interaction Alert"},
    };
    auto it = displays.find(code);
    return it == displays.end() ? std::string_view() : it->second;
}

// The part of a reference usable inside an identifier: the logical id, or the uuid.
std::string EncounterKey(const fhir::ClinicalResource& encounter) {
    if (!encounter.entry->id.empty()) return std::string(encounter.entry->id);
    std::string_view url = encounter.entry->full_url;
    auto colon = url.rfind(':');
    auto slash = url.rfind('/');
    auto cut = colon == std::string_view::npos   ? slash
               : slash == std::string_view::npos ? colon
                                                 : std::max(colon, slash);
    return std::string(cut == std::string_view::npos ? url : url.substr(cut + 1));
}

std::string DescribeMatch(const Evidence& e) {
    switch (e.match) {
        case Evidence::Match::kText:
            return "matched by name";
        case Evidence::Match::kAge:
            return "age from Patient.birthDate";
        case Evidence::Match::kCode:
            break;
    }
    return "matched " + std::string(SystemName(e.coding.system)) + " " + std::string(e.coding.code);
}

fhir::CodingValue Value(const CodingSpec& spec) { return {spec.system, spec.code, spec.display}; }

fhir::LocalInstant Local(fhir::Instant instant, int offset) { return {instant, offset}; }

std::string Prefix(std::string_view type, std::string key) {
    if (type == "Encounter") return key + ":";
    std::string lower(type);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return lower + "-" + key + ":";
}

// The identifier prefix of what is written for the assessed encounter or appointment.
std::string PrefixOf(const fhir::ClinicalResource& treated) {
    return Prefix(treated.entry->resource_type, EncounterKey(treated));
}

// One DetectedIssue per finding, explained: which rule, which resources, which dates.
void AddFindings(const RuleSet& rules, const Assessment& a, fhir::Instant now,
                 fhir::TransactionValue& value) {
    const int offset = a.offset_minutes;
    for (const Finding& finding : a.findings) {
        const Rule& rule = rules.rules[finding.rule];
        fhir::DetectedIssueValue issue;
        issue.identifier = {std::string(kIdentifierSystem), value.key_prefix + "issue:" + rule.id};
        issue.codes.push_back({"http://terminology.hl7.org/CodeSystem/v3-ActCode", rule.issue_code,
                               std::string(IssueCodeDisplay(rule.issue_code))});
        issue.codes.push_back({std::string(kRuleCodeSystem), rule.id, rule.title});
        issue.title = rule.id + " " + rule.title;
        issue.severity = WireSeverity(finding.severity);
        issue.patient = a.patient;
        issue.identified = Local(now, offset);
        issue.detail = rule.message + " Evidence: ";
        for (std::size_t i = 0; i < finding.evidence.size(); ++i) {
            const Evidence& e = finding.evidence[i];
            issue.implicated.emplace_back(e.resource->reference);
            issue.detail += (i ? "; " : "") + DescribeEvidence(e, offset);
        }
        issue.detail += ". Windows are measured from " + a.origin_source + " " +
                        fhir::FormatInstant(a.origin, offset) + ".";
        for (std::string_view note : finding.notes)
            issue.detail += " Note: " + std::string(note) + ".";
        issue.detail += " Action: " + rule.action + " Rule " + rule.id + " (" +
                        std::string(ToString(finding.severity)) + ") of rule pack " + rules.id +
                        " " + rules.version + ".";
        value.issues.push_back(std::move(issue));
    }
}

// The review Task of an assessment that needs one; the caller says what it is for.
fhir::TaskValue ReviewTask(const RuleSet& rules, const Assessment& a, fhir::Instant now,
                           const std::string& prefix) {
    fhir::TaskValue task;
    task.identifier = {std::string(kIdentifierSystem), prefix + "task"};
    task.priority = a.HasAbsolute() ? "urgent" : "routine";
    task.reason = "Contraindications found:";
    for (const Finding& finding : a.findings) {
        if (finding.severity < Severity::kRelative) continue;
        task.reason += " " + rules.rules[finding.rule].id + " (" +
                       std::string(WireSeverity(finding.severity)) + ")";
    }
    task.patient = a.patient;
    task.authored = Local(now, a.offset_minutes);
    return task;
}

}  // namespace

std::string DescribeEvidence(const Evidence& e, int offset) {
    std::string text = std::string(e.resource->reference) + " (" + DescribeMatch(e);
    if (!e.resource->status.empty()) {
        text += "; status " + std::string(e.resource->status);
        if (e.resource->status_defaulted) text += " (no status recorded)";
    }
    if (e.date) {
        text += "; " + std::string(e.date->element) + " " +
                (e.date->estimated || e.date->plus.count() != 0
                     ? fhir::FormatDate(e.date->Latest(offset), offset) + " (estimated)"
                     : e.date->value.ToString());
    }
    text += e.ongoing ? "; ongoing" : "";
    for (std::string_view note : e.notes) text += "; " + std::string(note);
    return text + ")";
}

std::string IdentifierPrefix(std::string_view reference) {
    const auto slash = reference.find('/');
    if (slash == std::string_view::npos) return Prefix("Encounter", std::string(reference));
    return Prefix(reference.substr(0, slash), std::string(reference.substr(slash + 1)));
}

fhir::TransactionValue BuildRetirement(const RuleSet& rules, std::string_view reference) {
    fhir::TransactionValue value;
    value.provenance.pack_tag = {std::string(kRulePackTagSystem), rules.id, rules.title};
    value.provenance.pack_version = rules.version;
    value.provenance.pack_sha256 = rules.sha256;
    value.provenance.pack_uri =
        "https://microcare.example/fhir/rule-pack/" + rules.id + "|" + rules.version;
    if (!reference.empty()) value.key_prefix = IdentifierPrefix(reference);
    return value;
}

namespace {

// What both builders start from: the pack's provenance, the treatment's identifier prefix (from
// the treatment alone: the same encounter or appointment assessed again, under any pack, names
// the same resources, so a new pack revises what an earlier one wrote instead of writing beside
// it), and a DetectedIssue per finding.
fhir::TransactionValue WithFindings(const RuleSet& rules, const Assessment& a, fhir::Instant now) {
    fhir::TransactionValue value = BuildRetirement(rules, "");
    value.key_prefix = PrefixOf(*a.encounter);
    AddFindings(rules, a, now, value);
    return value;
}

}  // namespace

fhir::TransactionValue BuildTransaction(const RuleSet& rules, const Assessment& a,
                                        fhir::Instant now) {
    if (!a.applies) return BuildRetirement(rules, "");
    fhir::TransactionValue value = WithFindings(rules, a, now);
    const int offset = a.offset_minutes;

    fhir::CarePlanValue plan;
    plan.identifier = {std::string(kIdentifierSystem), value.key_prefix + "careplan"};
    plan.title = "Microneedling aftercare";
    plan.description = "Aftercare after microneedling session " + std::to_string(a.session_number) +
                       " of " + std::to_string(a.series_length) +
                       (a.findings.empty() ? "; no contraindication found."
                                           : "; " + std::to_string(a.findings.size()) +
                                                 " contraindication finding(s) to review.");
    plan.subject = a.patient;
    plan.encounter = a.encounter->reference;
    plan.period_start = Local(a.origin, offset);
    fhir::Instant end = a.origin;
    for (const PlannedActivity& activity : a.activities) {
        end = std::max(end, activity.end);
        fhir::ActivityValue out;
        out.code = Value(activity.code);
        out.status = activity.status;
        out.description = activity.description;
        out.start = Local(activity.start, offset);
        out.end = Local(activity.end, offset);
        switch (activity.kind) {
            case PlannedActivity::Kind::kCheck:
                out.kind = "CommunicationRequest";
                break;
            case PlannedActivity::Kind::kNextSession:
            case PlannedActivity::Kind::kMaintenance:
                out.kind = "Appointment";
                break;
            case PlannedActivity::Kind::kInstruction:
                break;
        }
        plan.activities.push_back(std::move(out));
    }
    plan.period_end = Local(end, offset);
    plan.created = Local(now, offset);
    value.care_plan = std::move(plan);
    if (a.NeedsReview()) {
        fhir::TaskValue task = ReviewTask(rules, a, now, value.key_prefix);
        task.description = a.HasAbsolute()
                               ? "Review the contraindications found before any further "
                                 "microneedling session; the next session is on hold."
                               : "Review the contraindications found before the next "
                                 "microneedling session.";
        task.encounter = a.encounter->reference;
        value.task = std::move(task);
    }
    return value;
}

fhir::TransactionValue BuildPreVisitTransaction(const RuleSet& rules, const Assessment& a,
                                                fhir::Instant now) {
    if (!a.applies) return BuildRetirement(rules, "");
    fhir::TransactionValue value = WithFindings(rules, a, now);
    if (a.NeedsReview()) {
        fhir::TaskValue task = ReviewTask(rules, a, now, value.key_prefix);
        const std::string when = fhir::FormatInstant(a.origin, a.offset_minutes);
        task.description =
            a.HasAbsolute()
                ? "Before the microneedling appointment of " + when +
                      ": review the contraindications found; do not treat until reviewed."
                : "Before the microneedling appointment of " + when +
                      ": review the contraindications found.";
        task.focus = a.encounter->reference;
        task.due = Local(a.origin, a.offset_minutes);
        value.task = std::move(task);
    }
    return value;
}

std::string Summarize(const RuleSet& rules, const Assessment& a) {
    if (!a.applies) return "No aftercare plan: " + a.explanation + ".\n";
    std::string text = std::string(a.encounter->reference) + ": microneedling session " +
                       std::to_string(a.session_number) + " of " + std::to_string(a.series_length) +
                       (a.indication.empty() ? "" : " (" + a.indication + ")") + ", from " +
                       a.origin_source + ".\n";
    if (a.findings.empty()) text += "  No contraindication found.\n";
    for (const Finding& finding : a.findings) {
        const Rule& rule = rules.rules[finding.rule];
        text += "  " + std::string(WireSeverity(finding.severity)) + "  " + rule.id + " " +
                rule.title + ":";
        for (const Evidence& e : finding.evidence) text += " " + std::string(e.resource->reference);
        text += "\n";
    }
    for (const PlannedActivity& activity : a.activities) {
        if (activity.kind == PlannedActivity::Kind::kInstruction) continue;
        text += "  plan  " + activity.code.display + " " +
                fhir::FormatDate(activity.start, a.offset_minutes) + " to " +
                fhir::FormatDate(activity.end, a.offset_minutes) + " (" + activity.status + ")\n";
    }
    text += a.NeedsReview() ? "  A Task asks a clinician to review.\n" : "";
    return text;
}

}  // namespace microcare::rules
