#include "adapter/evaluate_command.hpp"

#include <chrono>
#include <ostream>

#include "adapter/file_io.hpp"
#include "adapter/issue_report.hpp"
#include "adapter/rule_pack_file.hpp"
#include "adapter/time_bound.hpp"
#include "rules/record_assessment.hpp"

namespace microcare::adapter {
namespace {

constexpr int kBadInput = 2;
constexpr std::size_t kMaxRecordBytes = 64 * 1024 * 1024;

int Report(std::ostream& err, const std::string& source, const fhir::IssueList& issues) {
    ReportIssues(err, source, issues);
    return issues.HasErrors() ? kBadInput : 0;
}

}  // namespace

int RunEvaluate(const EvaluateArgs& args, std::ostream& out, std::ostream& err) {
    const std::string rules_path = RulePackPath(args.rules_path);
    fhir::IssueList pack_issues;
    auto rule_set = LoadRulePackFile(rules_path, pack_issues);
    if (!rule_set) {
        Report(err, rules_path, pack_issues);
        return kBadInput;
    }

    fhir::Instant now =
        std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    if (args.now) {
        auto parsed = ParseInstant(*args.now);
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
    rules::EncounterChoice encounter{args.encounter, "--encounter"};
    auto run = rules::RecordAssessment::Run(*rule_set, *text, encounter, now, issues);
    if (Report(err, args.record_path, issues) != 0 || !run) return kBadInput;
    out << run->TransactionJson(!args.compact) << "\n";
    err << run->Summary();
    return 0;
}

int RunRulesCheck(const std::string& path, std::ostream& out, std::ostream& err) {
    auto rule_set = CheckRulePackFile(path, err);
    if (!rule_set) return kBadInput;
    out << path << ": rule pack " << rule_set->id << " " << rule_set->version
        << " is valid: " << rule_set->value_sets.size() << " value sets, " << rule_set->rules.size()
        << " contraindication rules, " << rule_set->aftercare.instructions.size()
        << " patient instructions\n"
        << path << ": sha256 " << rule_set->sha256 << "\n";
    return 0;
}

}  // namespace microcare::adapter
