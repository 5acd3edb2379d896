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

// The record classified once: each resource's value sets and whether it is a microneedling
// session, so that no concept is matched twice and no loop runs resources x resources.
struct Classified {
    std::vector<ValueSetMask> code_masks;  // aligned with record.resources
    std::vector<bool> microneedling;       // encounters and procedures that are sessions
};

bool HasTextOnlyCode(const RuleSet& rules, const fhir::Concept& concept_value) {
    for (const fhir::Coding& coding : concept_value.codings) {
        for (const CodingSpec& spec : rules.microneedling.require_text) {
            if (coding.system == spec.system && coding.code == spec.code) return true;
        }
    }
    return false;
}

// A concept names microneedling. Codes listed in requireText (CPT 17999) count only with a
// text match, so the concept is matched again with them blanked out; their displays stay.
bool IsMicroneedlingConcept(const RuleSet& rules, const fhir::Concept& concept_value,
                            const ValueSetMask& mask) {
    if (!mask.test(rules.microneedling.value_set)) return false;
    if (!HasTextOnlyCode(rules, concept_value)) return true;
    fhir::Concept blanked = concept_value;
    for (fhir::Coding& coding : blanked.codings) {
        for (const CodingSpec& spec : rules.microneedling.require_text) {
            if (coding.system == spec.system && coding.code == spec.code) coding.code = {};
        }
    }
    return rules.codes.Match(blanked).test(rules.microneedling.value_set);
}

bool IsMicroneedlingConcept(const RuleSet& rules, const fhir::Concept& concept_value) {
    return !concept_value.empty() &&
           IsMicroneedlingConcept(rules, concept_value, rules.codes.Match(concept_value));
}

// `all` false: only what finding the sessions needs (procedures and encounters).
Classified Classify(const RuleSet& rules, const fhir::PatientRecord& record, bool all = true) {
    const auto& resources = record.resources;
    Classified out;
    out.code_masks.resize(resources.size());
    out.microneedling.assign(resources.size(), false);
    std::vector<std::string_view> treated_encounters;
    for (std::size_t i = 0; i < resources.size(); ++i) {
        const ClinicalResource& r = resources[i];
        if (r.type == ResourceType::kEncounter || r.type == ResourceType::kPatient) continue;
        if (!all && r.type != ResourceType::kProcedure) continue;
        out.code_masks[i] = rules.codes.Match(r.code);
        if (r.type == ResourceType::kProcedure &&
            Contains(rules.microneedling.procedure_status, r.status) &&
            IsMicroneedlingConcept(rules, r.code, out.code_masks[i])) {
            out.microneedling[i] = true;
            if (!r.encounter.empty()) treated_encounters.push_back(r.encounter);
        }
    }
    for (std::size_t i = 0; i < resources.size(); ++i) {
        const ClinicalResource& r = resources[i];
        if (r.type != ResourceType::kEncounter) continue;
        auto named = [&](const std::vector<fhir::Concept>& concepts) {
            return std::any_of(concepts.begin(), concepts.end(), [&](const fhir::Concept& c) {
                return IsMicroneedlingConcept(rules, c);
            });
        };
        out.microneedling[i] = named(r.kinds) || named(r.reasons) ||
                               std::find(treated_encounters.begin(), treated_encounters.end(),
                                         r.reference) != treated_encounters.end();
    }
    return out;
}

// Runs every index-selected criterion over the patient's resources once.
class Evaluation {
public:
    Evaluation(const RuleSet& rules, const fhir::PatientRecord& record,
               const Classified& classified, Assessment& out)
        : rules_(rules),
          record_(record),
          classified_(classified),
          out_(out),
          matches_(rules.criteria.size()) {}

    void Run() {
        for (std::size_t i = 0; i < record_.resources.size(); ++i) {
            const ClinicalResource& resource = record_.resources[i];
            if (!BelongsToPatient(resource) || IsThisTreatment(i)) continue;
            if (resource.type == ResourceType::kPatient) {
                for (std::size_t c : rules_.criteria_without_value_set) Try(c, resource);
                continue;
            }
            if (resource.type == ResourceType::kEncounter) continue;
            const ValueSetMask& mask = classified_.code_masks[i];
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

    // The encounter itself and its microneedling Procedure are the treatment, not evidence;
    // anything else recorded in the same encounter (a toxin injection, a peel) is.
    bool IsThisTreatment(std::size_t index) const {
        const ClinicalResource& resource = record_.resources[index];
        return &resource == out_.encounter ||
               (resource.type == ResourceType::kProcedure && classified_.microneedling[index] &&
                resource.encounter == out_.encounter->reference);
    }

    int Offset() const { return out_.offset_minutes; }

    Instant WindowStart(const fhir::CalendarDuration& duration) {
        // A pack uses a dozen distinct windows; each is computed once per evaluation.
        for (const auto& [d, start] : window_starts_) {
            if (d == duration) return start;
        }
        Instant start = fhir::AddCalendar(out_.origin, duration, -1, Offset());
        window_starts_.emplace_back(duration, start);
        return start;
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
            evidence.date = r.start ? &*r.start : nullptr;
        } else {
            if (!criterion.look_back) return false;
            evidence.date = r.end ? &*r.end : nullptr;
            if (!r.end) {
                evidence.notes.push_back("its date is not recorded, so it is counted");
            } else if (!criterion.look_back->unlimited &&
                       r.end->Latest(Offset()) < WindowStart(criterion.look_back->duration)) {
                return false;
            }
        }
        SetMatch(criterion, r, evidence);
        ApplyCaps(r, evidence);
        return true;
    }

    bool CheckAge(const Criterion& criterion, const ClinicalResource& r, Evidence& evidence) {
        if (!criterion.age_under || !r.birth_date) return false;
        // A full date: the birthday begins at the start of that day. A partial date (a year or
        // a month): its latest possible day gives the youngest possible age, so that when in
        // doubt the rule is found.
        const fhir::DateTime& born = *r.birth_date;
        Instant birth =
            born.precision() == fhir::DatePrecision::kDay
                ? born.Earliest(Offset())
                : born.Latest(Offset()) - std::chrono::days(1) + std::chrono::milliseconds(1);
        if (fhir::AddCalendar(birth, *criterion.age_under, 1, Offset()) <= out_.origin)
            return false;
        evidence.match = Evidence::Match::kAge;
        evidence.ongoing = true;
        return true;
    }

    bool ValueMatches(const ClinicalResource& r, std::size_t value_set) const {
        if (r.value_concept && rules_.codes.Match(*r.value_concept).test(value_set)) return true;
        return std::any_of(
            r.interpretation.begin(), r.interpretation.end(),
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

    void SetMatch(const Criterion& criterion, const ClinicalResource& r, Evidence& evidence) const {
        evidence.match = Evidence::Match::kText;
        if (!criterion.value_set) return;
        for (const fhir::Coding& coding : r.code.codings) {
            if (rules_.codes.MatchCoding(coding).test(*criterion.value_set)) {
                evidence.match = Evidence::Match::kCode;
                evidence.coding = coding;
                return;
            }
        }
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
    bool Overtaken(std::size_t index, const Evidence& e) const {
        const Criterion& criterion = rules_.criteria[index];
        if (!criterion.unless_later || !e.resource->start) return false;
        const Instant evidence_time = e.resource->start->Latest(Offset());
        for (const Evidence& later : matches_[*criterion.unless_later]) {
            if (later.resource->start &&
                later.resource->start->Earliest(Offset()) > evidence_time) {
                return true;
            }
        }
        return false;
    }

    bool AnyStanding(std::size_t index) const {
        for (const Evidence& e : matches_[index]) {
            if (!Overtaken(index, e)) return true;
        }
        return false;
    }

    void Collect() {
        std::vector<std::optional<Finding>> found(rules_.rules.size());
        for (std::size_t i = 0; i < rules_.rules.size(); ++i) {
            const Rule& rule = rules_.rules[i];
            Finding finding;
            finding.rule = i;
            for (std::size_t c : rule.evidence) {
                for (Evidence& e : matches_[c]) {
                    if (Overtaken(c, e)) continue;
                    bool seen =
                        std::any_of(finding.evidence.begin(), finding.evidence.end(),
                                    [&](const Evidence& x) { return x.resource == e.resource; });
                    if (!seen) finding.evidence.push_back(std::move(e));
                }
            }
            if (finding.evidence.empty()) continue;
            found[i] = std::move(finding);
        }
        // Suppression is per evidence resource: a clinician reviewing the finding must see every
        // relevant record, so only the resources a suppressing finding already shows are dropped
        // (a history of skin cancer in another record stays beside an active one). Suppressors
        // are compared with everything they found, before their own suppression, so the order of
        // the rules in the pack does not matter. Grading follows, on what is left.
        for (std::size_t i = 0; i < found.size(); ++i) {
            if (!found[i]) continue;
            const auto& excluders = rules_.rules[i].excluded_by;
            if (std::any_of(excluders.begin(), excluders.end(),
                            [&](std::size_t s) { return found[s].has_value(); })) {
                continue;
            }
            Finding finding = *found[i];
            std::erase_if(finding.evidence,
                          [&](const Evidence& e) { return ShownBySuppressor(i, found, e); });
            if (finding.evidence.empty()) continue;
            Grade(rules_.rules[i], finding);
            out_.findings.push_back(std::move(finding));
        }
        std::stable_sort(
            out_.findings.begin(), out_.findings.end(),
            [](const Finding& a, const Finding& b) { return a.severity > b.severity; });
    }

    // Whether a rule that suppresses rule `rule` rests on the same resource as `e`.
    bool ShownBySuppressor(std::size_t rule, const std::vector<std::optional<Finding>>& found,
                           const Evidence& e) const {
        for (std::size_t s : rules_.rules[rule].suppressed_by) {
            if (!found[s]) continue;
            const auto& shown = found[s]->evidence;
            if (std::any_of(shown.begin(), shown.end(),
                            [&](const Evidence& x) { return x.resource == e.resource; })) {
                return true;
            }
        }
        return false;
    }

    void Grade(const Rule& rule, Finding& finding) {
        // The strongest piece of evidence decides; caps only lower what that evidence supports.
        Severity supported = Severity::kInfo;
        for (const Evidence& e : finding.evidence) {
            supported = std::max(supported, e.cap.value_or(Severity::kAbsolute));
        }
        finding.severity = std::min(rule.severity, supported);
        if (finding.severity < rule.severity) {
            finding.notes.push_back("severity lowered by the status of its evidence");
        }
        if (rule.downgrade) {
            bool downgraded = std::any_of(rule.downgrade->when.begin(), rule.downgrade->when.end(),
                                          [&](std::size_t c) { return AnyStanding(c); });
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
    const Classified& classified_;
    Assessment& out_;
    std::vector<std::vector<Evidence>> matches_;
    std::vector<std::pair<fhir::CalendarDuration, Instant>> window_starts_;
};

const ClinicalResource* ProcedureOf(const fhir::PatientRecord& record, const Classified& classified,
                                    const ClinicalResource& encounter) {
    for (std::size_t i = 0; i < record.resources.size(); ++i) {
        const ClinicalResource& r = record.resources[i];
        if (classified.microneedling[i] && r.type == ResourceType::kProcedure &&
            r.encounter == encounter.reference) {
            return &r;
        }
    }
    return nullptr;
}

std::size_t IndexOf(const fhir::PatientRecord& record, const ClinicalResource& resource) {
    return static_cast<std::size_t>(&resource - record.resources.data());
}

Instant SortKey(const ClinicalResource& r) {
    return r.start ? r.start->Earliest(0) : Instant::min();
}

// The day number of an instant on the calendar of an offset.
long LocalDay(Instant instant, int offset_minutes) {
    return std::chrono::floor<std::chrono::days>(instant + std::chrono::minutes(offset_minutes))
        .time_since_epoch()
        .count();
}

void PlanAftercare(const RuleSet& rules, const fhir::PatientRecord& record,
                   const Classified& classified, Assessment& out) {
    const Aftercare& care = rules.aftercare;
    const int offset = out.offset_minutes;
    auto at = [&](const fhir::CalendarDuration& d) {
        return fhir::AddCalendar(out.origin, d, 1, offset);
    };

    // Indication: the first whose value set matches a reason for the treatment.
    int length = care.series_length;
    fhir::CalendarDuration earliest = care.series_earliest;
    fhir::CalendarDuration latest = care.series_latest;
    // Each reason is matched once, not once per indication.
    ValueSetMask reasons;
    for (const auto& c : out.encounter->reasons) reasons |= rules.codes.Match(c);
    if (out.procedure) {
        for (const auto& c : out.procedure->reasons) reasons |= rules.codes.Match(c);
    }
    for (const SeriesIndication& indication : care.indications) {
        if (reasons.test(indication.value_set)) {
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
    std::set<long> days{LocalDay(out.origin, offset)};
    for (std::size_t i = 0; i < record.resources.size(); ++i) {
        const ClinicalResource& r = record.resources[i];
        if (!classified.microneedling[i] || r.subject != out.patient || !r.start) continue;
        if (r.type == ResourceType::kEncounter &&
            !Contains(rules.microneedling.encounter_status, r.status)) {
            continue;
        }
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
    check.description =
        care.check_description + " Due " + fhir::FormatInstant(at(care.check_due), offset) + ".";
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
                           earliest.ToString() + " to " + latest.ToString() + " after this one. " +
                           care.series_description + hold_note;
    } else {
        next.kind = PlannedActivity::Kind::kMaintenance;
        next.code = care.maintenance_code;
        next.start = at(care.maintenance_earliest);
        next.end = at(care.maintenance_latest);
        next.description =
            "Series of " + std::to_string(length) + " complete: maintenance session " +
            care.maintenance_earliest.ToString() + " to " + care.maintenance_latest.ToString() +
            " after this one. " + care.maintenance_description + hold_note;
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
        activity.instruction = instruction.id;
        out.activities.push_back(std::move(activity));
    }
}

}  // namespace

std::string_view ToString(Severity severity) {
    switch (severity) {
        case Severity::kAbsolute:
            return "absolute";
        case Severity::kRelative:
            return "relative";
        case Severity::kInfo:
            return "info";
    }
    return "info";
}

std::string_view WireSeverity(Severity severity) {
    switch (severity) {
        case Severity::kAbsolute:
            return "high";
        case Severity::kRelative:
            return "moderate";
        case Severity::kInfo:
            return "low";
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

std::vector<const ClinicalResource*> FindMicroneedlingEncounters(
    const RuleSet& rules, const fhir::PatientRecord& record) {
    const Classified classified = Classify(rules, record, false);
    std::vector<const ClinicalResource*> result;
    for (std::size_t i = 0; i < record.resources.size(); ++i) {
        if (record.resources[i].type == ResourceType::kEncounter && classified.microneedling[i]) {
            result.push_back(&record.resources[i]);
        }
    }
    std::stable_sort(result.begin(), result.end(),
                     [](const ClinicalResource* a, const ClinicalResource* b) {
                         return SortKey(*a) > SortKey(*b);
                     });
    return result;
}

const ClinicalResource* LatestEncounter(const fhir::PatientRecord& record) {
    const ClinicalResource* latest = nullptr;
    for (const ClinicalResource& r : record.resources) {
        if (r.type == ResourceType::kEncounter &&
            (latest == nullptr || SortKey(r) > SortKey(*latest))) {
            latest = &r;
        }
    }
    return latest;
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
    const Classified classified = Classify(rules, record);
    if (!classified.microneedling[IndexOf(record, encounter)]) {
        out.explanation = std::string(encounter.reference) +
                          " is not a microneedling encounter: neither its "
                          "type, service type or reason nor a Procedure of it matches the "
                          "pack's microneedling codes or text";
        return out;
    }
    // A proposed treatment is assessed before it takes place: its status says nothing yet.
    if (!encounter.proposed && !Contains(rules.microneedling.encounter_status, encounter.status)) {
        out.explanation = std::string(encounter.reference) + " has status \"" +
                          std::string(encounter.status) +
                          "\": only a treatment that took place gets an aftercare plan";
        return out;
    }
    out.procedure = ProcedureOf(record, classified, encounter);
    if (encounter.start) {
        out.offset_minutes = encounter.start->value.offset_minutes().value_or(0);
        out.origin = encounter.start->Earliest(out.offset_minutes);
        out.origin_source = encounter.proposed ? std::string(encounter.entry->resource_type) + "." +
                                                     std::string(encounter.start->element)
                                               : "Encounter.period.start";
    } else if (out.procedure && out.procedure->start) {
        out.offset_minutes = out.procedure->start->value.offset_minutes().value_or(0);
        out.origin = out.procedure->start->Earliest(out.offset_minutes);
        out.origin_source = "Procedure." + std::string(out.procedure->start->element);
    } else {
        out.origin = now;
        out.origin_source = "the evaluation time (the encounter has no start date)";
    }
    out.applies = true;
    Evaluation(rules, record, classified, out).Run();
    PlanAftercare(rules, record, classified, out);
    return out;
}

}  // namespace microcare::rules
