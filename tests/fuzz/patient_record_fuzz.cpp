// libFuzzer target: a patient's record as `microcare evaluate` and the worker read it — the
// Bundle indexed, its resources read into a PatientRecord, the encounter chosen and assessed
// with the shipped rule pack, and the transaction written.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>

#include "fhir/bundle.hpp"
#include "fhir/json.hpp"
#include "fhir/patient_record.hpp"
#include "fhir/transaction_builder.hpp"
#include "rules/evaluator.hpp"
#include "rules/plan_writer.hpp"
#include "rules/rule_set_loader.hpp"

namespace {

namespace fhir = microcare::fhir;
namespace rules = microcare::rules;

const rules::RuleSet& ShippedPack() {
    static const rules::RuleSet pack = [] {
        std::ifstream in(MICROCARE_SOURCE_DIR "/config/rules/microneedling.json");
        std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        fhir::IssueList issues;
        auto loaded = rules::LoadRuleSet(text, nullptr, issues);
        if (!loaded) __builtin_trap();  // the fuzzer would only exercise refusals
        return std::move(*loaded);
    }();
    return pack;
}

const fhir::Instant kNow = fhir::DateTime::Parse("2026-11-24T12:00:00Z")->Earliest();

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const rules::RuleSet& pack = ShippedPack();
    const std::string text(reinterpret_cast<const char*>(data), size);
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(text, issues);
    if (!doc) return 0;
    // Any root, not only a Bundle: BundleIndex also reads a lone resource as a record.
    fhir::BundleIndex index(doc->Root(), issues);
    fhir::PatientRecord record = fhir::ReadPatientRecord(index, issues);
    for (const fhir::BundleEntry& entry : index.entries()) {
        (void)index.Identity(entry.full_url, &entry);
        (void)fhir::BundleIndex::ReferenceTo(entry);
    }

    // The worker and RunEvaluate assess only a record read without errors.
    if (issues.HasErrors()) return 0;
    // The choice RunEvaluate makes, then every encounter of the record as the worker would.
    (void)rules::FindMicroneedlingEncounters(pack, record);
    (void)rules::LatestEncounter(record);
    for (const fhir::ClinicalResource& resource : record.resources) {
        if (resource.type != fhir::ResourceType::kEncounter) continue;
        (void)rules::FindEncounter(record, resource.reference);
        rules::Assessment assessment = rules::Evaluate(pack, record, resource, kNow);
        fhir::JsonWriter writer;
        fhir::WriteTransaction(writer, rules::BuildTransaction(pack, assessment, kNow));
        (void)rules::Summarize(pack, assessment);
        // What goes to the EHR must be JSON MicroCare itself reads back.
        fhir::IssueList written_issues;
        if (!writer.View().empty() &&
            !fhir::JsonDocument::Parse(std::string(writer.View()), written_issues)) {
            __builtin_trap();
        }
    }
    return 0;
}
