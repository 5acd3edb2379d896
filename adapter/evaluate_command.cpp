#include "adapter/evaluate_command.hpp"

#include <chrono>
#include <ostream>

#include "adapter/file_io.hpp"
#include "adapter/issue_report.hpp"
#include "adapter/rule_pack_file.hpp"
#include "fhir/bundle.hpp"
#include "fhir/json.hpp"
#include "fhir/patient_record.hpp"
#include "fhir/transaction_builder.hpp"
#include "rules/evaluator.hpp"
#include "rules/plan_writer.hpp"

namespace microcare::adapter {
namespace {

constexpr int kBadInput = 2;
constexpr std::size_t kMaxRecordBytes = 64 * 1024 * 1024;

int Report(std::ostream& err, const std::string& source, const fhir::IssueList& issues) {
    ReportIssues(err, source, issues);
    return issues.HasErrors() ? kBadInput : 0;
}

std::optional<fhir::Instant> ParseNow(const std::string& text) {
    auto parsed = fhir::DateTime::Parse(text);
    if (!parsed || parsed->precision() != fhir::DatePrecision::kSecond ||
        !parsed->offset_minutes()) {
        return std::nullopt;
    }
    return parsed->Earliest();
}

}  // namespace

int RunEvaluate(const EvaluateArgs& args, std::ostream& out, std::ostream& err) {
    const std::string rules_path =
        args.rules_path.empty() ? DefaultRulePackPath() : args.rules_path;
    fhir::IssueList pack_issues;
    auto rule_set = LoadRulePackFile(rules_path, pack_issues);
    if (!rule_set) {
        Report(err, rules_path, pack_issues);
        return kBadInput;
    }

    fhir::Instant now =
        std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    if (args.now) {
        auto parsed = ParseNow(*args.now);
        if (!parsed) {
            err << "--now: \"" << *args.now
                << "\" is not a FHIR instant such as 2026-11-24T12:00:00Z\n";
            return kBadInput;
        }
        now = *parsed;
    }

    // A record is one patient's Bundle: the EHR's own responses are capped at 64 MiB too.
    std::string problem;
    auto text = ReadFile(args.record_path, &problem, kMaxRecordBytes);
    if (!text) {
        err << args.record_path << ": cannot be read: " << problem << "\n";
        return kBadInput;
    }
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(*text, issues);
    if (!doc) return Report(err, args.record_path, issues);
    if (doc->Root()["resourceType"].String() != "Bundle") {
        issues.Error("structure", "resourceType",
                     "expected a Bundle holding the patient's record and the encounter");
        return Report(err, args.record_path, issues);
    }
    fhir::BundleIndex index(doc->Root(), issues);
    fhir::PatientRecord record = fhir::ReadPatientRecord(index, issues);

    const fhir::ClinicalResource* encounter = nullptr;
    if (args.encounter) {
        encounter = rules::FindEncounter(record, *args.encounter);
        if (encounter == nullptr) {
            issues.Error("not-found", "--encounter",
                         "the record holds no Encounter \"" + *args.encounter + "\"");
        }
    } else {
        auto candidates = rules::FindMicroneedlingEncounters(*rule_set, record);
        encounter = candidates.empty() ? rules::LatestEncounter(record) : candidates.front();
        if (encounter == nullptr)
            issues.Error("required", "Bundle.entry", "the record holds no Encounter");
    }
    if (encounter != nullptr && encounter->subject.empty()) {
        issues.Error("required", encounter->entry->Path() + ".subject",
                     "missing: MicroCare needs to know whose record this is");
    }
    if (Report(err, args.record_path, issues) != 0) return kBadInput;

    rules::Assessment assessment = rules::Evaluate(*rule_set, record, *encounter, now);
    fhir::JsonWriter writer(!args.compact);
    fhir::WriteTransaction(writer, rules::BuildTransaction(*rule_set, assessment, now));
    out << writer.View() << "\n";
    err << rules::Summarize(*rule_set, assessment);
    return 0;
}

int RunRulesCheck(const std::string& path, std::ostream& out, std::ostream& err) {
    fhir::IssueList issues;
    auto rule_set = LoadRulePackFile(path, issues);
    Report(err, path, issues);
    if (!rule_set) {
        ReportRefused(err, path, issues);
        return kBadInput;
    }
    out << path << ": rule pack " << rule_set->id << " " << rule_set->version
        << " is valid: " << rule_set->value_sets.size() << " value sets, " << rule_set->rules.size()
        << " contraindication rules, " << rule_set->aftercare.instructions.size()
        << " patient instructions\n";
    return 0;
}

}  // namespace microcare::adapter
