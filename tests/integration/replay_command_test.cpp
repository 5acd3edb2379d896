// `microcare rules replay` end to end in process: sample records on the fake EHR (read over
// HTTP through the configured client), a real SQLite store and audit trail in a temporary
// directory, the shipped pack in force and an edited one as NEW (a severity raised, a rule
// removed, a rule added). What is checked is what an operator sees and what is left behind:
// the printed changes, the jobs, the audit record.
#include "adapter/replay_command.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "adapter/audit/audit_log.hpp"
#include "adapter/jobs/job_contract.hpp"
#include "adapter/store/job_store.hpp"
#include "service_harness.hpp"

namespace microcare::testing {
namespace {

using namespace std::chrono_literals;

// One rule object of the shipped pack's text (its rules are indented by four spaces).
std::pair<std::size_t, std::size_t> RuleSpan(const std::string& pack, const std::string& id) {
    const auto start = pack.find("    {\n      \"id\": \"" + id + "\"");
    EXPECT_NE(start, std::string::npos) << id;
    const auto end = pack.find("\n    }", start) + 6;
    return {start, end};
}

// The shipped pack with R4 (anticoagulants) made absolute, A5 (pregnancy) removed and a copy of
// R1 (herpes history) added as R1-copy.
std::string EditedPack(std::string pack) {
    const std::string r4 =
        "\"id\": \"R4\",\n      \"title\": \"Anticoagulant or antiplatelet "
        "therapy\",\n      \"severity\": \"";
    pack.replace(pack.find(r4 + "relative"), r4.size() + 8, r4 + "absolute");
    auto [a5, a5_end] = RuleSpan(pack, "A5");
    pack.erase(a5, a5_end - a5 + 2);  // and its ",\n"
    auto [r1, r1_end] = RuleSpan(pack, "R1");
    std::string copy = pack.substr(r1, r1_end - r1);
    copy.replace(copy.find("\"R1\""), 4, "\"R1-copy\"");
    pack.insert(r1_end, ",\n" + copy);
    return pack;
}

// The sample records all use the same ids: each patient's get a prefix of their own.
std::string Prefixed(const std::string& bundle, const std::string& prefix) {
    static const std::regex id(R"("id": ")");
    static const std::regex reference(R"(("reference": "[A-Za-z]+/))");
    return std::regex_replace(std::regex_replace(bundle, id, "\"id\": \"" + prefix + "-"),
                              reference, "$1" + prefix + "-");
}

std::size_t Count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

class ReplayCommandTest : public ::testing::Test {
protected:
    void SetUp() override {
        ehr_ = std::make_unique<FakeEhr>();
        for (const auto& [prefix, file] : kSamples) {
            ehr_->Load(Prefixed(ReadSource("config/examples/" + file + ".json"), prefix));
        }
        dir_ = FreshDirectory("replay");
        const std::string shipped = ReadSource("config/rules/microneedling.json");
        in_force_path_ = (dir_ / "in-force.json").string();
        new_path_ = (dir_ / "new.json").string();
        std::ofstream(in_force_path_) << shipped;
        std::ofstream(new_path_) << EditedPack(shipped);
        config_path_ = (dir_ / "microcare.json").string();
        store_path_ = (dir_ / "microcare.db").string();
        audit_path_ = (dir_ / "audit.log").string();
        std::ofstream(config_path_) << R"({
          "server": {"listen": "127.0.0.1", "port": 0, "auth": {"bearerTokens": [")"
                                    << kToken << R"("]}},
          "store": {"path": ")" << store_path_
                                    << R"("},
          "audit": {"path": ")" << audit_path_
                                    << R"("},
          "ehr": {"baseUrl": ")" << ehr_->BaseUrl()
                                    << R"(", "requestTimeoutMs": 5000},
          "rules": {"path": ")" << in_force_path_
                                    << R"("},
          "log": {"level": "warning"}
        })";
        // What the service did: one done assessment per encounter, a day apart from the 20th.
        adapter::StoreOptions options;
        options.synchronous_full = false;
        options.now = [this] { return now_; };
        auto store = adapter::JobStore::Open(store_path_, options);
        ASSERT_TRUE(store);
        now_ = adapter::TimePoint(std::chrono::sys_days(std::chrono::year{2026} / 11 / 20) + 12h);
        std::int64_t event = 0;
        for (const auto& [prefix, file] : kSamples) {
            (*store)->Enqueue(
                adapter::SubscriptionEventJob("Subscription/s1", ++event, Encounter(prefix)));
            auto leased = (*store)->Lease(now_, 60s, 1);
            ASSERT_TRUE(leased && leased->size() == 1);
            ASSERT_TRUE((*store)->Complete(leased->front().id, "written"));
            now_ += 24h;
        }
        // Not assessments of an encounter, or not done: never replayed.
        (*store)->Enqueue(adapter::R4NotificationJob("Encounter/queued-only", "r1"));
        (*store)->Close();
    }
    void TearDown() override {
        ehr_->Stop();
        std::filesystem::remove_all(dir_);
    }

    static std::string Encounter(const std::string& prefix) {
        return "Encounter/" + prefix + "-enc-mn-20261120";
    }

    int Replay(adapter::ReplayArgs args) {
        args.config_path = config_path_;
        if (args.rules_path.empty()) args.rules_path = new_path_;
        args.rate = 1000;
        args.now = "2026-11-24T12:00:00Z";
        out_.str("");
        err_.str("");
        return adapter::RunRulesReplay(args, out_, err_);
    }

    std::vector<adapter::Job> Jobs() {
        auto store = adapter::JobStore::Open(store_path_);
        EXPECT_TRUE(store);
        adapter::JobFilter filter;
        filter.limit = 1000;
        auto jobs = (*store)->List(filter);
        (*store)->Close();
        return jobs ? *jobs : std::vector<adapter::Job>{};
    }

    std::string AuditTrail() {
        std::ifstream in(audit_path_);
        std::ostringstream text;
        text << in.rdbuf();
        return text.str();
    }

    // Assessed on the 20th, 21st, 22nd and 23rd of November, in this order.
    const std::vector<std::pair<std::string, std::string>> kSamples = {
        {"iso", "absolute-isotretinoin"},
        {"anti", "relative-anticoagulant"},
        {"preg", "pregnancy"},
        {"clean", "clean-first-session"}};

    std::unique_ptr<FakeEhr> ehr_;
    std::filesystem::path dir_;
    std::string in_force_path_, new_path_, config_path_, store_path_, audit_path_;
    adapter::TimePoint now_;
    std::ostringstream out_, err_;
};

const char* kAnticoagulantChanges =
    "Encounter/anti-enc-mn-20261120: 2 changes\n"
    "  ~ finding R4@MedicationStatement/anti-ms-apixaban: relative -> absolute\n"
    "  ~ activity next-session: scheduled 2026-12-18T09:00:00+01:00 to "
    "2027-01-01T09:00:00+01:00 -> on-hold 2026-12-18T09:00:00+01:00 to "
    "2027-01-01T09:00:00+01:00\n";

TEST_F(ReplayCommandTest, ADryRunPrintsExactlyWhatChangesAndWritesNothing) {
    const auto jobs_before = Jobs();
    ASSERT_EQ(Replay({}), 0) << err_.str();
    const std::string out = out_.str();
    EXPECT_NE(out.find("4 encounter(s) assessed"), std::string::npos) << out;
    EXPECT_NE(out.find(kAnticoagulantChanges), std::string::npos) << out;
    EXPECT_NE(out.find("Encounter/preg-enc-mn-20261120: 3 changes\n"
                       "  - finding A5@Observation/preg-obs-pregstatus-20260820: absolute\n"
                       "  + finding R1-copy@Condition/preg-cond-herpes-labialis: relative\n"
                       "  ~ activity next-session: on-hold 2026-12-18T11:30:00+01:00 to "
                       "2027-01-01T11:30:00+01:00 -> scheduled 2026-12-18T11:30:00+01:00 to "
                       "2027-01-01T11:30:00+01:00\n"),
              std::string::npos)
        << out;
    EXPECT_EQ(out.find("iso-enc"), std::string::npos) << "unchanged encounters are not listed";
    EXPECT_EQ(out.find("clean-enc"), std::string::npos);
    EXPECT_NE(out.find("totals: 4 encounter(s), 2 changed, 2 unchanged, 0 not compared; findings "
                       "1 added, 1 removed, 1 severity changed; activities 0 added, 0 removed, 2 "
                       "changed"),
              std::string::npos)
        << out;

    const auto jobs_after = Jobs();
    ASSERT_EQ(jobs_after.size(), jobs_before.size());
    for (std::size_t i = 0; i < jobs_after.size(); ++i) {
        EXPECT_EQ(jobs_after[i].state, jobs_before[i].state);
        EXPECT_EQ(jobs_after[i].updated_at, jobs_before[i].updated_at);
    }
    EXPECT_EQ(Count(AuditTrail(), "\"event\":\"replay\""), 0u);
    // Read from the EHR (batches of reads), never written to it.
    EXPECT_EQ(ehr_->Count("CarePlan"), 0u);
    EXPECT_EQ(ehr_->Count("DetectedIssue"), 0u);
}

TEST_F(ReplayCommandTest, ApplyQueuesEachChangedEncounterOnceAndAuditsTheReplay) {
    const std::size_t before = Jobs().size();
    adapter::ReplayArgs args;
    args.apply = true;
    ASSERT_EQ(Replay(args), 0) << err_.str();
    EXPECT_NE(out_.str().find("queued 2 re-assessment(s); 0 already pending"), std::string::npos)
        << out_.str();
    auto jobs = Jobs();
    ASSERT_EQ(jobs.size(), before + 2);
    std::set<std::string> queued;
    for (const adapter::Job& job : jobs) {
        if (job.state != adapter::JobState::kQueued || job.encounter == "Encounter/queued-only")
            continue;
        EXPECT_EQ(job.kind, adapter::kJobAssess);
        queued.insert(job.encounter);
    }
    EXPECT_EQ(queued, (std::set<std::string>{Encounter("anti"), Encounter("preg")}));

    // Again while they wait: nothing more.
    ASSERT_EQ(Replay(args), 0) << err_.str();
    EXPECT_NE(out_.str().find("queued 0 re-assessment(s); 2 already pending"), std::string::npos)
        << out_.str();
    EXPECT_EQ(Jobs().size(), before + 2);

    const std::string trail = AuditTrail();
    EXPECT_EQ(Count(trail, "\"event\":\"replay\""), 2u) << trail;
    EXPECT_NE(trail.find("\"queued\":\"2\""), std::string::npos) << trail;
    EXPECT_NE(trail.find("\"newPack\":\"microcare-microneedling 1.0.0\""), std::string::npos);
    EXPECT_NE(trail.find("\"packSha256\":\""), std::string::npos);
    EXPECT_NE(trail.find("\"newPackSha256\":\""), std::string::npos);
    EXPECT_NE(trail.find("\"user\":\""), std::string::npos);
}

TEST_F(ReplayCommandTest, ABrokenNewPackIsRefusedWithEveryProblemAndQueuesNothing) {
    const std::string broken = (dir_ / "broken.json").string();
    std::string text = EditedPack(ReadSource("config/rules/microneedling.json"));
    text.replace(text.find("\"lookBack\": \"unlimited\""), 23, "\"lookBack\": \"6 months\"");
    text.replace(text.find("\"severity\": \"absolute\""), 22, "\"severity\": \"fatal\"");
    std::ofstream(broken) << text;
    const std::size_t before = Jobs().size();
    adapter::ReplayArgs args;
    args.rules_path = broken;
    args.apply = true;
    EXPECT_EQ(Replay(args), 2);
    const std::string err = err_.str();
    EXPECT_NE(err.find(broken + ": error: contraindications["), std::string::npos) << err;
    EXPECT_NE(err.find("lookBack"), std::string::npos) << err;
    EXPECT_NE(err.find("severity"), std::string::npos) << err;
    EXPECT_NE(err.find(broken + ": refused (2 problems)"), std::string::npos) << err;
    EXPECT_EQ(out_.str(), "");
    EXPECT_EQ(Jobs().size(), before);
    EXPECT_EQ(ehr_->Requests().size(), 0u);
    EXPECT_EQ(Count(AuditTrail(), "\"event\":\"replay\""), 0u);
}

TEST_F(ReplayCommandTest, TheEncounterAndTheWindowChooseWhatIsReplayed) {
    adapter::ReplayArgs one;
    one.encounter = "anti-enc-mn-20261120";  // an id works as well as a reference
    ASSERT_EQ(Replay(one), 0) << err_.str();
    EXPECT_NE(out_.str().find("1 encounter(s) assessed (Encounter/anti-enc-mn-20261120)"),
              std::string::npos)
        << out_.str();
    EXPECT_NE(out_.str().find(kAnticoagulantChanges), std::string::npos) << out_.str();
    EXPECT_NE(out_.str().find("totals: 1 encounter(s), 1 changed"), std::string::npos);

    adapter::ReplayArgs window;  // assessed on the 20th and 21st only
    window.since = "2026-11-20";
    window.until = "2026-11-21";
    ASSERT_EQ(Replay(window), 0) << err_.str();
    EXPECT_NE(out_.str().find("2 encounter(s) assessed since 2026-11-20 until 2026-11-21"),
              std::string::npos)
        << out_.str();
    EXPECT_NE(out_.str().find(kAnticoagulantChanges), std::string::npos);
    EXPECT_EQ(out_.str().find("preg-enc"), std::string::npos) << out_.str();
    EXPECT_NE(out_.str().find("totals: 2 encounter(s), 1 changed, 1 unchanged"), std::string::npos);

    adapter::ReplayArgs later;
    later.since = "2026-11-22T00:00:00Z";
    ASSERT_EQ(Replay(later), 0) << err_.str();
    EXPECT_NE(out_.str().find("totals: 2 encounter(s), 1 changed, 1 unchanged"), std::string::npos)
        << out_.str();
    EXPECT_NE(out_.str().find("preg-enc"), std::string::npos);
    EXPECT_EQ(out_.str().find("anti-enc"), std::string::npos);

    adapter::ReplayArgs bad;
    bad.since = "last tuesday";
    EXPECT_EQ(Replay(bad), 2);
    EXPECT_NE(err_.str().find("--since: \"last tuesday\""), std::string::npos) << err_.str();
}

TEST_F(ReplayCommandTest, ApplyWhileTheServiceHoldsTheTrailQueuesNothing) {
    adapter::AuditSettings settings;
    settings.path = audit_path_;
    auto service_trail = adapter::AuditLog::Open(settings);
    ASSERT_TRUE(service_trail);
    const std::size_t before = Jobs().size();
    adapter::ReplayArgs args;
    args.apply = true;
    EXPECT_EQ(Replay(args), 1);
    EXPECT_NE(err_.str().find("nothing was queued"), std::string::npos) << err_.str();
    EXPECT_EQ(Jobs().size(), before);
    EXPECT_EQ(ehr_->Requests().size(), 0u);
}

TEST_F(ReplayCommandTest, AnEncounterTheEhrNoLongerHasIsNamedAndTheExitSaysSo) {
    ehr_->InjectFault("GET", "Encounter/iso-enc-mn-20261120",
                      Fault::Outcome(404, "not-found", "gone"));
    EXPECT_EQ(Replay({}), 1);
    EXPECT_NE(out_.str().find("Encounter/iso-enc-mn-20261120: not compared: the EHR answered 404"),
              std::string::npos)
        << out_.str();
    EXPECT_NE(out_.str().find("totals: 4 encounter(s), 2 changed, 1 unchanged, 1 not compared"),
              std::string::npos)
        << out_.str();
}

}  // namespace
}  // namespace microcare::testing
