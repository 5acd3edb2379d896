// Throughput of the core on a realistic record (~50 resources, ~50 KB): RapidJSON's own parse
// as the ceiling, MicroCare's parse, the rule evaluation alone, and parse + evaluate + write.
//   build/tests/microcare_bench [--benchmark_filter=...] [--benchmark_repetitions=N]
// At the end it prints Evaluate's CPU time as a ratio of RapidJSON's parse in the same run
// (issue 6: at most 0.1), from the medians when repetitions are asked for.
#include <benchmark/benchmark.h>
#include <rapidjson/document.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "adapter/file_io.hpp"
#include "adapter/rule_pack_file.hpp"
#include "fhir/bundle.hpp"
#include "fhir/json.hpp"
#include "fhir/patient_record.hpp"
#include "fhir/transaction_builder.hpp"
#include "rules/evaluator.hpp"
#include "rules/plan_writer.hpp"

namespace {

using namespace microcare;

const std::string& Record() {
    static const std::string text = [] {
        const char* path = std::getenv("MICROCARE_BENCH_RECORD");
        auto loaded = adapter::ReadFile(
            path ? path : MICROCARE_SOURCE_DIR "/tests/fixtures/bench/record-50.json");
        if (!loaded) {
            std::cerr << "cannot read the benchmark record\n";
            std::exit(1);
        }
        return *loaded;
    }();
    return text;
}

const rules::RuleSet& Pack() {
    static const rules::RuleSet set = [] {
        fhir::IssueList issues;
        auto loaded = adapter::LoadRulePackFile(
            MICROCARE_SOURCE_DIR "/config/rules/microneedling.json", issues);
        if (!loaded) {
            std::cerr << "cannot load the default rule pack\n";
            std::exit(1);
        }
        return std::move(*loaded);
    }();
    return set;
}

const fhir::Instant kNow = fhir::DateTime::Parse("2026-11-24T12:00:00Z")->Earliest();

void Count(benchmark::State& state) {
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * Record().size()));
}

void BM_RapidJsonParse(benchmark::State& state) {
    const std::string& text = Record();
    for (auto _ : state) {
        rapidjson::Document doc;
        doc.Parse(text.c_str(), text.size());
        benchmark::DoNotOptimize(doc.IsObject());
    }
    Count(state);
}
BENCHMARK(BM_RapidJsonParse);

void BM_MicroCareParse(benchmark::State& state) {
    const std::string& text = Record();
    for (auto _ : state) {
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(text, issues);
        benchmark::DoNotOptimize(doc.has_value());
    }
    Count(state);
}
BENCHMARK(BM_MicroCareParse);

void BM_ReadRecord(benchmark::State& state) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(Record(), issues);
    for (auto _ : state) {
        fhir::BundleIndex index(doc->Root(), issues);
        fhir::PatientRecord record = fhir::ReadPatientRecord(index, issues);
        benchmark::DoNotOptimize(record.resources.data());
    }
    Count(state);
}
BENCHMARK(BM_ReadRecord);

void BM_WriteTransaction(benchmark::State& state) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(Record(), issues);
    fhir::BundleIndex index(doc->Root(), issues);
    fhir::PatientRecord record = fhir::ReadPatientRecord(index, issues);
    auto encounters = rules::FindMicroneedlingEncounters(Pack(), record);
    rules::Assessment a = rules::Evaluate(Pack(), record, *encounters.front(), kNow);
    for (auto _ : state) {
        fhir::JsonWriter writer;
        fhir::WriteTransaction(writer, rules::BuildTransaction(Pack(), a, kNow));
        benchmark::DoNotOptimize(writer.View().data());
    }
    Count(state);
}
BENCHMARK(BM_WriteTransaction);

void BM_EvaluateOnly(benchmark::State& state) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(Record(), issues);
    fhir::BundleIndex index(doc->Root(), issues);
    fhir::PatientRecord record = fhir::ReadPatientRecord(index, issues);
    auto encounters = rules::FindMicroneedlingEncounters(Pack(), record);
    if (encounters.empty()) {
        state.SkipWithError("the benchmark record has no microneedling encounter");
        return;
    }
    std::size_t findings = 0;
    for (auto _ : state) {
        rules::Assessment a = rules::Evaluate(Pack(), record, *encounters.front(), kNow);
        findings = a.findings.size();
        benchmark::DoNotOptimize(a);
    }
    state.counters["findings"] = static_cast<double>(findings);
    state.counters["resources"] = static_cast<double>(record.resources.size());
    Count(state);
}
BENCHMARK(BM_EvaluateOnly);

void BM_ParseEvaluateSerialize(benchmark::State& state) {
    const std::string& text = Record();
    std::size_t out_bytes = 0;
    for (auto _ : state) {
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(text, issues);
        fhir::BundleIndex index(doc->Root(), issues);
        fhir::PatientRecord record = fhir::ReadPatientRecord(index, issues);
        auto encounters = rules::FindMicroneedlingEncounters(Pack(), record);
        rules::Assessment a = rules::Evaluate(Pack(), record, *encounters.front(), kNow);
        fhir::JsonWriter writer;
        fhir::WriteTransaction(writer, rules::BuildTransaction(Pack(), a, kNow));
        out_bytes = writer.View().size();
        benchmark::DoNotOptimize(out_bytes);
    }
    state.counters["output_bytes"] = static_cast<double>(out_bytes);
    Count(state);
}
BENCHMARK(BM_ParseEvaluateSerialize);

// The console report, remembering each benchmark's CPU time (its median if there are several).
class RatioReporter : public benchmark::ConsoleReporter {
public:
    // Colours only on a terminal, as the library's own reporter does.
    RatioReporter() : ConsoleReporter(isatty(fileno(stdout)) ? OO_ColorTabular : OO_Tabular) {}

    void ReportRuns(const std::vector<Run>& runs) override {
        for (const Run& run : runs) {
            const std::string name = run.run_name.function_name;
            if (run.run_type == Run::RT_Iteration && !medians_.contains(name)) {
                single_[name] = run.GetAdjustedCPUTime();
            }
            if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") {
                medians_[name] = run.GetAdjustedCPUTime();
            }
        }
        ConsoleReporter::ReportRuns(runs);
    }

    double CpuTime(const std::string& name) const {
        if (auto it = medians_.find(name); it != medians_.end()) return it->second;
        if (auto it = single_.find(name); it != single_.end()) return it->second;
        return 0;
    }

private:
    std::map<std::string, double> single_;
    std::map<std::string, double> medians_;
};

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    RatioReporter reporter;
    benchmark::RunSpecifiedBenchmarks(&reporter);
    benchmark::Shutdown();
    const double parse = reporter.CpuTime("BM_RapidJsonParse");
    const double evaluate = reporter.CpuTime("BM_EvaluateOnly");
    if (parse > 0 && evaluate > 0) {
        std::printf("\nEvaluate / RapidJSON parse (CPU time): %.3f (target <= 0.1)\n",
                    evaluate / parse);
    }
    return 0;
}
