#include "rules/evaluator.hpp"

#include <algorithm>
#include <set>

namespace microcare::rules {
namespace {

using fhir::ClinicalResource;
using fhir::Instant;
using fhir::ResourceType;

bool Contains(const std::vector<std::string>& list, std::string_view value) {
    return std::find(list.begin(), list.end(), value) != list.end();
}

// Runs every index-selected criterion over the patient's resources once.
class Evaluation {
public:
    Evaluation(const RuleSet& rules, const fhir::PatientRecord& record, Assessment& out)
        : rules_(rules), record_(record), out_(out), matches_(rules.criteria.size()) {}

    void Run() {
        for (const ClinicalResource& resource : record_.resources) {
            if (!BelongsToPatient(resource) || IsThisTreatment(resource)) continue;
            if (resource.type == ResourceType::kPatient) {
                for (std::size_t c : rules_.criteria_without_value_set) Try(c, resource);
                continue;
            }
            if (resource.type == ResourceType::kEncounter) continue;
            ValueSetMask mask = rules_.codes.Match(resource.code);
            for (std::size_t vs = mask._Find_first(); vs < mask.size(); vs = mask._Find_next(vs)) {
                for (std::size_t c : rules_.criteria_by_value_set[vs]) Try(c, resource);
            }
        }
        Collect();
    }

private:
    bool BelongsToPatient(const ClinicalResource& resource) const {
        if (resource.type == ResourceType::kPatient) return resource.reference == out_.patient;
        return resource.subject.empty() || resource.subject == out_.patient;
    }

    bool IsThisTreatment(const ClinicalResource& resource) const {
        return &resource == out_.encounter ||
               (resource.type == ResourceType::kProcedure && !resource.encounter.empty() &&
                resource.encounter == out_.encounter->reference);
    }

    int Offset() const { return out_.offset_minutes; }

    Instant WindowStart(const fhir::CalendarDuration& duration) {
        return fhir::AddCalendar(out_.origin, duration, -1, Offset());
    }

    void Try(std::size_t index, const ClinicalResource& resource) {
        const Criterion& criterion = rules_.criteria[index];
        if (!criterion.Accepts(resource.type)) return;
        Evidence evidence;
        if (Check(criterion, resource, evidence)) {
            evidence.resource = &resource;
            matches_[index].push_back(std::move(evidence));
        }
    }

    bool Check(const Criterion& criterion, const ClinicalResource& r, Evidence& evidence) {
        if (r.type == ResourceType::kPatient) return CheckAge(criterion, r, evidence);
        // Never counted, whatever a pack says.
        if (r.status == "entered-in-error" || r.verification_status == "refuted" ||
            r.verification_status == "entered-in-error") {
            return false;
        }
        const StatusSets& defaults = rules_.StatusDefaults(r.type);
        const auto& ongoing_statuses = criterion.ongoing ? *criterion.ongoing : defaults.ongoing;
        const auto& past_statuses = criterion.past ? *criterion.past : defaults.past;
        const bool ongoing = Contains(ongoing_statuses, r.status);
        if (!ongoing && !Contains(past_statuses, r.status)) return false;

        // What began after the encounter is not evidence for it.
        if (r.start && r.start->Earliest(Offset()) > out_.origin) return false;
        if (criterion.onset_within) {
            if (!r.start) {
                evidence.notes.push_back("its onset date is not recorded");
            } else if (r.start->Latest(Offset()) < WindowStart(*criterion.onset_within)) {
                return false;
            }
        }
        if (criterion.value_value_set && !ValueMatches(r, *criterion.value_value_set)) return false;
        if (criterion.quantity && !QuantityMatches(r, *criterion.quantity)) return false;

        evidence.ongoing = ongoing;
        if (ongoing) {
            evidence.date = r.start;
        } else {
            if (!criterion.look_back) return false;
            evidence.date = r.end;
            if (!r.end) {
                evidence.notes.push_back("its date is not recorded, so it is counted");
            } else if (!criterion.look_back->unlimited &&
                       r.end->Latest(Offset()) < WindowStart(criterion.look_back->duration)) {
                return false;
            }
        }
        evidence.matched = Matched(criterion, r);
        ApplyCaps(r, evidence);
        return true;
    }

    bool CheckAge(const Criterion& criterion, const ClinicalResource& r, Evidence& evidence) {
        if (!criterion.age_under || !r.birth_date) return false;
        // The latest possible birth (a partial date) gives the youngest possible age: when in
        // doubt, flag.
        Instant birth = r.birth_date->Latest(Offset());
        if (fhir::AddCalendar(birth, *criterion.age_under, 1, Offset()) <= out_.origin) return false;
        evidence.matched = "Patient.birthDate";
        evidence.ongoing = true;
        return true;
    }

    bool ValueMatches(const ClinicalResource& r, std::size_t value_set) const {
        if (r.value_concept && rules_.codes.Match(*r.value_concept).test(value_set)) return true;
        return std::any_of(r.interpretation.begin(), r.interpretation.end(),
                           [&](const fhir::Concept& c) { return rules_.codes.Match(c).test(value_set); });
    }

    static bool QuantityMatches(const ClinicalResource& r, const QuantityTest& test) {
        if (!r.quantity) return false;
        if (!test.unit.empty() && r.quantity->unit != test.unit && r.quantity->code != test.unit) {
            return false;
        }
        double v = r.quantity->value;
        if (test.comparator == ">") return v > test.value;
        if (test.comparator == ">=") return v >= test.value;
        if (test.comparator == "<") return v < test.value;
        return v <= test.value;
    }

    std::string Matched(const Criterion& criterion, const ClinicalResource& r) const {
        if (!criterion.value_set) return {};
        for (const fhir::Coding& coding : r.code.codings) {
            if (rules_.codes.MatchCoding(coding).test(*criterion.value_set)) {
                return std::string(coding.system) + "|" + std::string(coding.code);
            }
        }
        return "text";
    }

    void ApplyCaps(const ClinicalResource& r, Evidence& evidence) const {
        for (const Cap& cap : rules_.caps) {
            if (cap.resource_type != r.type) continue;
            bool applies = (!cap.status.empty() && Contains(cap.status, r.status)) ||
                           (!cap.verification_status.empty() &&
                            Contains(cap.verification_status, r.verification_status));
            if (applies && (!evidence.cap || cap.severity < *evidence.cap)) {
                evidence.cap = cap.severity;
                evidence.notes.push_back(cap.note);
            }
        }
    }

    // Evidence of criterion `index` that a later resource (unlessLater) has not overtaken.
    std::vector<Evidence> Standing(std::size_t index) const {
        const Criterion& criterion = rules_.criteria[index];
        std::vector<Evidence> standing;
        for (const Evidence& e : matches_[index]) {
            bool overtaken = false;
            if (criterion.unless_later && e.resource->start) {
                Instant evidence_time = e.resource->start->Latest(Offset());
                for (const Evidence& later : matches_[*criterion.unless_later]) {
                    if (later.resource->start &&
                        later.resource->start->Earliest(Offset()) > evidence_time) {
                        overtaken = true;
                        break;
                    }
                }
            }
            if (!overtaken) standing.push_back(e);
        }
        return standing;
    }

    void Collect() {
        std::vector<std::optional<Finding>> found(rules_.rules.size());
        for (std::size_t i = 0; i < rules_.rules.size(); ++i) {
            const Rule& rule = rules_.rules[i];
            Finding finding;
            finding.rule = i;
            for (std::size_t c : rule.evidence) {
                for (Evidence& e : Standing(c)) {
                    bool seen = std::any_of(finding.evidence.begin(), finding.evidence.end(),
                                            [&](const Evidence& x) { return x.resource == e.resource; });
                    if (!seen) finding.evidence.push_back(std::move(e));
                }
            }
            if (finding.evidence.empty()) continue;
            Grade(rule, finding);
            found[i] = std::move(finding);
        }
        for (std::size_t i = 0; i < found.size(); ++i) {
            if (!found[i]) continue;
            const auto& suppressors = rules_.rules[i].suppressed_by;
            bool suppressed = std::any_of(suppressors.begin(), suppressors.end(),
                                          [&](std::size_t s) { return found[s].has_value(); });
            if (!suppressed) out_.findings.push_back(std::move(*found[i]));
        }
        std::stable_sort(out_.findings.begin(), out_.findings.end(),
                         [](const Finding& a, const Finding& b) { return a.severity > b.severity; });
    }

    void Grade(const Rule& rule, Finding& finding) {
        // The strongest piece of evidence decides; caps only lower what that evidence supports.
        Severity supported = Severity::kInfo;
        for (const Evidence& e : finding.evidence) {
            supported = std::max(supported, e.cap.value_or(Severity::kAbsolute));
        }
        finding.severity = std::min(rule.severity, supported);
        if (finding.severity < rule.severity) {
            finding.notes.push_back("severity lowered from " + std::string(ToString(rule.severity)) +
                                    " by the status of its evidence");
        }
        if (rule.downgrade) {
            bool downgraded = std::any_of(rule.downgrade->when.begin(), rule.downgrade->when.end(),
                                          [&](std::size_t c) { return !Standing(c).empty(); });
            if (downgraded && rule.downgrade->severity < finding.severity) {
                finding.severity = rule.downgrade->severity;
                finding.notes.push_back(rule.downgrade->note);
            }
        }
        if (rule.treatment_area) {
            bool located = std::any_of(finding.evidence.begin(), finding.evidence.end(),
                                       [](const Evidence& e) { return e.resource->has_body_site; });
            finding.notes.push_back(located ? "confirm that the recorded body site is outside the "
                                              "treatment area before treating"
                                            : "the record does not say where: confirm whether it "
                                              "affects the treatment area");
        }
    }

    const RuleSet& rules_;
    const fhir::PatientRecord& record_;
    Assessment& out_;
    std::vector<std::vector<Evidence>> matches_;
};

// The concept with the codes that only count together with text (CPT 17999) blanked out; their
// displays stay, so that a matching display still counts.
fhir::Concept WithoutTextOnlyCodes(const RuleSet& rules, const fhir::Concept& concept_value) {
    fhir::Concept result = concept_value;
    for (fhir::Coding& coding : result.codings) {
        for (const CodingSpec& spec : rules.microneedling.require_text) {
            if (coding.system == spec.system && coding.code == spec.code) coding.code = {};
        }
    }
    return result;
}

bool IsMicroneedlingConcept(const RuleSet& rules, const fhir::Concept& concept_value) {
    if (concept_value.empty()) return false;
    return rules.codes.Match(WithoutTextOnlyCodes(rules, concept_value))
        .test(rules.microneedling.value_set);
}

bool IsMicroneedlingProcedure(const RuleSet& rules, const ClinicalResource& r) {
    return r.type == ResourceType::kProcedure &&
           Contains(rules.microneedling.procedure_status, std::string(r.status)) &&
           IsMicroneedlingConcept(rules, r.code);
}

const ClinicalResource* ProcedureOf(const RuleSet& rules, const fhir::PatientRecord& record,
                                    const ClinicalResource& encounter) {
    for (const ClinicalResource& r : record.resources) {
        if (!r.encounter.empty() && r.encounter == encounter.reference &&
            IsMicroneedlingProcedure(rules, r)) {
            return &r;
        }
    }
    return nullptr;
}

bool IsMicroneedlingEncounter(const RuleSet& rules, const fhir::PatientRecord& record,
                              const ClinicalResource& encounter) {
    auto matches = [&](const std::vector<fhir::Concept>& concepts) {
        return std::any_of(concepts.begin(), concepts.end(),
                           [&](const fhir::Concept& c) { return IsMicroneedlingConcept(rules, c); });
    };
    return matches(encounter.kinds) || matches(encounter.reasons) ||
           ProcedureOf(rules, record, encounter) != nullptr;
}

Instant SortKey(const ClinicalResource& r) {
    return r.start ? r.start->Earliest(0) : Instant::min();
}

std::string LocalDay(Instant instant, int offset_minutes) {
    return fhir::FormatDate(instant, offset_minutes);
}

void PlanAftercare(const RuleSet& rules, const fhir::PatientRecord& record, Assessment& out) {
    const Aftercare& care = rules.aftercare;
    const int offset = out.offset_minutes;
    auto at = [&](const fhir::CalendarDuration& d) {
        return fhir::AddCalendar(out.origin, d, 1, offset);
    };

    // Indication: the first whose value set matches a reason for the treatment.
    int length = care.series_length;
    fhir::CalendarDuration earliest = care.series_earliest;
    fhir::CalendarDuration latest = care.series_latest;
    std::vector<const fhir::Concept*> reasons;
    for (const auto& c : out.encounter->reasons) reasons.push_back(&c);
    if (out.procedure) {
        for (const auto& c : out.procedure->reasons) reasons.push_back(&c);
    }
    for (const SeriesIndication& indication : care.indications) {
        bool match = std::any_of(reasons.begin(), reasons.end(), [&](const fhir::Concept* c) {
            return rules.codes.Match(*c).test(indication.value_set);
        });
        if (match) {
            out.indication = indication.id;
            length = indication.length;
            earliest = indication.earliest;
            latest = indication.latest;
            break;
        }
    }
    out.series_length = length;

    // Sessions: distinct treatment days in the counting window, this one included.
    const Instant window_start = fhir::AddCalendar(out.origin, care.count_within, -1, offset);
    std::set<std::string> days{LocalDay(out.origin, offset)};
    for (const ClinicalResource& r : record.resources) {
        if (r.subject != out.patient || !r.start) continue;
        bool session = (r.type == ResourceType::kEncounter &&
                        Contains(rules.microneedling.encounter_status, std::string(r.status)) &&
                        IsMicroneedlingEncounter(rules, record, r)) ||
                       IsMicroneedlingProcedure(rules, r);
        if (!session) continue;
        Instant when = r.start->Earliest(offset);
        if (when < window_start || when > out.origin) continue;
        days.insert(LocalDay(when, offset));
    }
    out.session_number = static_cast<int>(days.size());

    const bool hold = out.HasAbsolute();
    const std::string next_status = hold ? "on-hold" : "scheduled";
    const std::string hold_note =
        hold ? " On hold until a clinician has reviewed the contraindications found." : "";

    PlannedActivity check;
    check.kind = PlannedActivity::Kind::kCheck;
    check.code = care.check_code;
    check.status = "scheduled";
    check.start = at(care.check_earliest);
    check.end = at(care.check_latest);
    check.description = care.check_description + " Due " +
                        fhir::FormatInstant(at(care.check_due), offset) + ".";
    out.activities.push_back(std::move(check));

    PlannedActivity next;
    next.status = next_status;
    if (out.session_number < length) {
        next.kind = PlannedActivity::Kind::kNextSession;
        next.code = care.series_code;
        next.start = at(earliest);
        next.end = at(latest);
        next.description = "Session " + std::to_string(out.session_number + 1) + " of " +
                           std::to_string(length) +
                           (out.indication.empty() ? "" : " (" + out.indication + ")") + ", " +
                           earliest.ToString() + " to " + latest.ToString() +
                           " after this one. " + care.series_description + hold_note;
    } else {
        next.kind = PlannedActivity::Kind::kMaintenance;
        next.code = care.maintenance_code;
        next.start = at(care.maintenance_earliest);
        next.end = at(care.maintenance_latest);
        next.description = "Series of " + std::to_string(length) +
                           " complete: maintenance session " +
                           care.maintenance_earliest.ToString() + " to " +
                           care.maintenance_latest.ToString() + " after this one. " +
                           care.maintenance_description + hold_note;
    }
    out.activities.push_back(std::move(next));

    for (const Instruction& instruction : care.instructions) {
        PlannedActivity activity;
        activity.kind = PlannedActivity::Kind::kInstruction;
        activity.code = care.education_code;
        activity.status = "in-progress";
        activity.start = at(instruction.from);
        activity.end = at(instruction.until);
        activity.description = instruction.text;
        out.activities.push_back(std::move(activity));
    }
}

}  // namespace

std::string_view ToString(Severity severity) {
    switch (severity) {
        case Severity::kAbsolute: return "absolute";
        case Severity::kRelative: return "relative";
        case Severity::kInfo: return "info";
    }
    return "info";
}

std::string_view WireSeverity(Severity severity) {
    switch (severity) {
        case Severity::kAbsolute: return "high";
        case Severity::kRelative: return "moderate";
        case Severity::kInfo: return "low";
    }
    return "low";
}

bool Assessment::NeedsReview() const {
    return std::any_of(findings.begin(), findings.end(),
                       [](const Finding& f) { return f.severity >= Severity::kRelative; });
}

bool Assessment::HasAbsolute() const {
    return std::any_of(findings.begin(), findings.end(),
                       [](const Finding& f) { return f.severity == Severity::kAbsolute; });
}

std::vector<const ClinicalResource*> FindMicroneedlingEncounters(const RuleSet& rules,
                                                                 const fhir::PatientRecord& record) {
    std::vector<const ClinicalResource*> result;
    for (const ClinicalResource& r : record.resources) {
        if (r.type == ResourceType::kEncounter && IsMicroneedlingEncounter(rules, record, r)) {
            result.push_back(&r);
        }
    }
    std::stable_sort(result.begin(), result.end(),
                     [](const ClinicalResource* a, const ClinicalResource* b) {
                         return SortKey(*a) > SortKey(*b);
                     });
    return result;
}

const ClinicalResource* FindEncounter(const fhir::PatientRecord& record,
                                      std::string_view id_or_reference) {
    for (const ClinicalResource& r : record.resources) {
        if (r.type != ResourceType::kEncounter) continue;
        if (r.reference == id_or_reference || r.entry->id == id_or_reference ||
            r.entry->full_url == id_or_reference) {
            return &r;
        }
    }
    return nullptr;
}

Assessment Evaluate(const RuleSet& rules, const fhir::PatientRecord& record,
                    const ClinicalResource& encounter, Instant now) {
    Assessment out;
    out.encounter = &encounter;
    out.patient = encounter.subject;
    if (!IsMicroneedlingEncounter(rules, record, encounter)) {
        out.explanation = encounter.reference + " is not a microneedling encounter: neither its "
                          "type, service type or reason nor a Procedure of it matches the "
                          "pack's microneedling codes or text";
        return out;
    }
    if (!Contains(rules.microneedling.encounter_status, std::string(encounter.status))) {
        out.explanation = encounter.reference + " has status \"" + std::string(encounter.status) +
                          "\": only a treatment that took place gets an aftercare plan";
        return out;
    }
    out.procedure = ProcedureOf(rules, record, encounter);
    if (encounter.start) {
        out.offset_minutes = encounter.start->value.offset_minutes().value_or(0);
        out.origin = encounter.start->Earliest(out.offset_minutes);
        out.origin_source = "Encounter.period.start";
    } else if (out.procedure && out.procedure->start) {
        out.offset_minutes = out.procedure->start->value.offset_minutes().value_or(0);
        out.origin = out.procedure->start->Earliest(out.offset_minutes);
        out.origin_source = "Procedure." + out.procedure->start->element;
    } else {
        out.origin = now;
        out.origin_source = "the evaluation time (the encounter has no start date)";
    }
    out.applies = true;
    Evaluation(rules, record, out).Run();
    PlanAftercare(rules, record, out);
    return out;
}

}  // namespace microcare::rules
