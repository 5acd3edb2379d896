#include "rules/record_assessment.hpp"

#include "rules/evaluator.hpp"
#include "rules/plan_writer.hpp"

namespace microcare::rules {

std::unique_ptr<const RecordAssessment> RecordAssessment::Run(const RuleSet& pack,
                                                              const std::string& record,
                                                              const EncounterChoice& choice,
                                                              fhir::Instant now,
                                                              fhir::IssueList& issues) {
    // Not make_unique: the constructor is private, and the object never moves (views into it).
    std::unique_ptr<RecordAssessment> run(new RecordAssessment(pack));
    auto document = fhir::JsonDocument::Parse(record, issues);
    if (!document) return nullptr;
    const fhir::Node root = document->Root();
    run->documents_.documents.push_back(std::move(*document));
    if (root["resourceType"].String() != "Bundle") {
        issues.Error("structure", "resourceType",
                     "expected a Bundle holding the patient's record and the encounter");
        return nullptr;
    }
    run->index_.emplace(root, issues);
    if (!run->Assess(choice, now, issues)) return nullptr;
    return run;
}

std::unique_ptr<const RecordAssessment> RecordAssessment::Run(const RuleSet& pack,
                                                              RecordDocuments record,
                                                              const EncounterChoice& choice,
                                                              fhir::Instant now,
                                                              fhir::IssueList& issues) {
    std::unique_ptr<RecordAssessment> run(new RecordAssessment(pack));
    run->documents_ = std::move(record);
    run->index_.emplace(run->documents_.resources, issues);
    if (!run->Assess(choice, now, issues)) return nullptr;
    return run;
}

bool RecordAssessment::Assess(const EncounterChoice& choice, fhir::Instant now,
                              fhir::IssueList& issues) {
    record_ = fhir::ReadPatientRecord(*index_, issues);
    const fhir::ClinicalResource* encounter = nullptr;
    if (choice.proposed) {
        const fhir::BundleEntry* entry =
            choice.reference ? index_->Resolve(*choice.reference) : nullptr;
        if (entry == nullptr) {
            issues.Error("not-found", choice.source,
                         "the record holds no \"" + choice.reference.value_or("") + "\"");
        } else {
            encounter =
                fhir::ReadProposedTreatment(*index_, *entry, choice.patient, record_, issues);
        }
    } else if (choice.reference) {
        encounter = FindEncounter(record_, *choice.reference);
        if (encounter == nullptr) {
            issues.Error("not-found", choice.source,
                         "the record holds no Encounter \"" + *choice.reference + "\"");
        }
    } else {
        auto candidates = FindMicroneedlingEncounters(pack_, record_);
        encounter = candidates.empty() ? LatestEncounter(record_) : candidates.front();
        if (encounter == nullptr) {
            issues.Error("required", "Bundle.entry", "the record holds no Encounter");
        }
    }
    if (encounter != nullptr && encounter->subject.empty()) {
        issues.Error("required", encounter->entry->Path() + ".subject",
                     "missing: MicroCare needs to know whose record this is");
    }
    if (issues.HasErrors()) return false;

    encounter_ = encounter;
    assessment_ = Evaluate(pack_, record_, *encounter, now);
    // Advice before a treatment writes nothing, a screening before a visit no CarePlan: the
    // CarePlan follows the encounter.
    if (choice.pre_visit) {
        transaction_ = BuildPreVisitTransaction(pack_, assessment_, now);
    } else if (!choice.proposed) {
        transaction_ = BuildTransaction(pack_, assessment_, now);
    }
    return true;
}

Assessment RecordAssessment::EvaluateUnder(const RuleSet& other, fhir::Instant now) const {
    return Evaluate(other, record_, *encounter_, now);
}

std::string RecordAssessment::TransactionJson(bool pretty) const {
    fhir::JsonWriter writer(pretty);
    fhir::WriteTransaction(writer, transaction_);
    return writer.Take();
}

std::string RecordAssessment::Summary() const { return Summarize(pack_, assessment_); }

namespace {

// `Type/id/_history/vid` when the EHR gave the version it was read at: the trail then names the
// exact content a finding rests on, even after the resource changes.
std::string VersionedReference(const fhir::ClinicalResource& resource) {
    std::string out(resource.reference);
    if (resource.entry == nullptr || out.starts_with("urn:")) return out;
    const std::string_view version = resource.entry->resource["meta"]["versionId"].String();
    if (!version.empty()) out += "/_history/" + std::string(version);
    return out;
}

}  // namespace

std::string RecordAssessment::FindingsLine() const {
    std::string line;
    for (const Finding& f : assessment_.findings) {
        line += (line.empty() ? "" : " ") + pack_.rules[f.rule].id + ":" +
                std::string(WireSeverity(f.severity));
        for (const Evidence& e : f.evidence) line += "@" + VersionedReference(*e.resource);
    }
    return line;
}

}  // namespace microcare::rules
