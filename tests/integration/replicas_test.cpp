// Issue 13: replicas of MicroCare on one PostgreSQL store, each with its own port, one
// database (holding the one audit trail), one EHR. In process (ReplicasTest): triggers go to either
// replica; every acknowledged trigger ends in exactly one CarePlan, and the jobs of one encounter
// never run at once across replicas, even on an EHR whose conditional creates race. As real
// processes (ReplicaProcessTest): a replica SIGKILLed with jobs in flight, and every replica's
// database connection killed, and still every acknowledged trigger lands once.
#include <gtest/gtest.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <thread>

#include "adapter/audit/audit_query.hpp"
#include "adapter/audit/audit_verify.hpp"
#include "adapter/backup_command.hpp"
#include "adapter/configured_trail.hpp"
#include "adapter/file_io.hpp"
#include "adapter/restore_command.hpp"
#include "adapter/service/service.hpp"
#include "adapter/status_command.hpp"
#include "adapter/store/job_store.hpp"
#include "serve_process.hpp"
#include "service_harness.hpp"
#include "tests/unit/adapter/store/pg_test_database.hpp"

namespace microcare::testing {
namespace {

// One PostgreSQL schema, one fake EHR, and the replicas' directories.
class SharedStoreTest : public ::testing::Test {
protected:
    void SetUp() override {
        if (!pg_.available()) {
            GTEST_SKIP() << "PostgreSQL store not tested: " << pg_.skip_reason();
        }
        ehr_ = std::make_unique<FakeEhr>();
        ehr_->Load(ReadSource("config/examples/absolute-isotretinoin.json"));
    }
    void TearDown() override {
        if (ehr_) ehr_->Stop();
        for (const auto& dir : dirs_) std::filesystem::remove_all(dir);
    }

    // The one trail every replica wrote, in the database, read as `microcare audit verify` does.
    adapter::AuditReport VerifyTrailInDatabase() {
        std::string problem;
        auto trail = adapter::CopyTrailFromDatabase(pg_.url(), {}, problem);
        if (!trail) {
            ADD_FAILURE() << problem;
            return {};
        }
        return adapter::VerifyTrail(*trail);
    }
    static std::string Problems(const adapter::AuditReport& report) {
        std::string all;
        for (const auto& p : report.problems) all += p.file + ": " + p.message + "\n";
        return all;
    }

    adapter::test_support::PgTestSchema pg_;
    std::unique_ptr<FakeEhr> ehr_;
    std::vector<std::filesystem::path> dirs_;
};

class ReplicasTest : public SharedStoreTest {
protected:
    void TearDown() override {
        for (auto& replica : replicas_) replica->Stop();
        replicas_.clear();
        SharedStoreTest::TearDown();
    }

    // A replica: its own directory, the shared store.
    std::string StartReplica() {
        dirs_.push_back(FreshDirectory("replica" + std::to_string(dirs_.size())));
        adapter::ServiceConfig config = TestConfig(ehr_->BaseUrl(), dirs_.back());
        config.store.url = pg_.url();
        auto service = adapter::Service::Create(config, {}, {});
        EXPECT_TRUE(service) << service.error().message();
        if (!service) return "";
        replicas_.push_back(std::move(*service));
        replicas_.back()->Start();
        return "http://127.0.0.1:" + std::to_string(replicas_.back()->port()) + "/fhir";
    }

    std::vector<adapter::Job> Jobs() {
        auto store = adapter::JobStore::Open(pg_.url());
        if (!store) return {};
        adapter::JobFilter filter;
        filter.limit = 1000;
        auto jobs = (*store)->List(filter);
        return jobs ? *jobs : std::vector<adapter::Job>{};
    }

    bool AllDone(std::size_t count) {
        auto jobs = Jobs();
        if (jobs.size() != count) return false;
        for (const auto& job : jobs) {
            if (job.state != adapter::JobState::kDone) return false;
        }
        return true;
    }

    // A configuration file in the first replica's directory: a PostgreSQL store at `url`, or a
    // SQLite one at `store` with its trail at `trail`.
    std::string ConfigFile(const std::string& name, const std::string& url,
                           const std::string& store = "", const std::string& trail = "") {
        const std::string path = (dirs_.front() / name).string();
        const std::string where = url.empty() ? R"("store": {"path": ")" + store +
                                                    R"("}, "audit": {"path": ")" + trail + "\"}"
                                              : R"("store": {"url": ")" + url + "\"}";
        std::ofstream(path) << R"({"server": {"port": 0, "auth": {"allowAnonymous": true}},
            "ehr": {"baseUrl": ")"
                            << ehr_->BaseUrl() << R"("}, )" << where << R"(, "rules": {"path": ")"
                            << MICROCARE_SOURCE_DIR << R"(/config/rules/microneedling.json"}})";
        return path;
    }

    std::vector<std::unique_ptr<adapter::Service>> replicas_;
};

TEST_F(ReplicasTest, TriggersToEitherReplicaEndInOneCarePlanAndNeverRunAtOnce) {
    ehr_->SetRaceMode(true, std::chrono::milliseconds(100));
    const std::string a = StartReplica();
    const std::string b = StartReplica();
    ASSERT_FALSE(a.empty() || b.empty());
    // Four triggers of one encounter at once, two through each replica; the same message sent
    // to both replicas is one job.
    const std::string encounter = "Encounter/enc-mn-20261120";
    const std::vector<std::pair<std::string, std::string>> triggers = {
        {a + "/$process-message", MessageBundle("msg-1", "hdr-1", encounter)},
        {b + "/$process-message", MessageBundle("msg-1", "hdr-1", encounter)},
        {b + "/$process-message", MessageBundle("msg-2", "hdr-2", encounter)},
        {a + "/$process-message", MessageBundle("msg-3", "hdr-3", encounter)},
        {b + "/notifications", ehr_->Get("Encounter", "enc-mn-20261120").value_or("")},
    };
    std::vector<Reply> replies(triggers.size());
    std::vector<std::thread> senders;
    senders.reserve(triggers.size());
    for (std::size_t i = 0; i < triggers.size(); ++i) {
        senders.emplace_back(
            [&, i] { replies[i] = PostJson(triggers[i].first, triggers[i].second); });
    }
    for (auto& sender : senders) sender.join();
    for (const Reply& reply : replies) {
        ASSERT_LT(reply.status, 300u) << reply.error << reply.body;
    }
    ASSERT_TRUE(WaitFor([&] { return AllDone(4); })) << Jobs().size() << " jobs";
    EXPECT_EQ(ehr_->Count("CarePlan"), 1u);
    EXPECT_EQ(ehr_->Count("DetectedIssue"), 1u);
    EXPECT_EQ(ehr_->MaxConcurrentTransactions(), 1u);
    for (auto& replica : replicas_) replica->Stop();
    // Both replicas' records in one chain: each job's decision, and each one's start and stop.
    const adapter::AuditReport trail = VerifyTrailInDatabase();
    EXPECT_TRUE(trail.intact()) << Problems(trail);
    ASSERT_TRUE(trail.checkpoint);
    EXPECT_EQ(trail.checkpoint->records, trail.head_seq);
    EXPECT_GE(trail.head_seq, 4u + 4u);
    // Both replicas move the trigger records into it: each goes in once.
    std::string problem;
    auto copy = adapter::CopyTrailFromDatabase(pg_.url(), {}, problem);
    ASSERT_TRUE(copy) << problem;
    std::map<std::string, int> notes;
    for (const auto& at : adapter::QueryTrail(copy->path, {}, {})) {
        if (!at.record.Get("note").empty()) ++notes[std::string(at.record.Get("note"))];
    }
    EXPECT_GE(notes.size(), 4u);
    for (const auto& [note, times] : notes) EXPECT_EQ(times, 1) << "note " << note;
}

// `microcare backup` of a PostgreSQL store: the store's schema as pg_dump's custom format
// (nothing else of the database), beside the trail, the pack and the configuration; `restore`
// into a SQLite store refuses it, naming pg_restore.
TEST_F(ReplicasTest, ABackupOfThePostgresStoreIsAPgDumpOfItsSchema) {
    const std::string a = StartReplica();
    ASSERT_FALSE(a.empty());
    const Reply reply =
        PostJson(a + "/$process-message",
                 MessageBundle("msg-backup", "hdr-backup", "Encounter/enc-mn-20261120"));
    ASSERT_LT(reply.status, 300u) << reply.error << reply.body;
    ASSERT_TRUE(WaitFor([&] { return AllDone(1); }));
    for (auto& replica : replicas_) replica->Stop();
    replicas_.clear();

    const std::filesystem::path dir = dirs_.front();
    const std::string postgres = ConfigFile("postgres.json", pg_.url());
    // `status` reads the one trail from the database.
    std::ostringstream status, status_err;
    adapter::RunStatus(postgres, status, status_err);
    EXPECT_NE(status.str().find("audit trail: intact"), std::string::npos) << status.str();
    EXPECT_NE(status.str().find("in the store's database"), std::string::npos) << status.str();

    std::ostringstream out, err;
    const std::string backup = (dir / "backup").string();
    ASSERT_EQ(adapter::RunBackup({postgres, backup}, out, err), 0) << err.str();
    EXPECT_NE(out.str().find("store (pg_dump, custom format)"), std::string::npos) << out.str();
    EXPECT_NE(out.str().find("records, in the dump"), std::string::npos) << out.str();
    const std::string manifest = adapter::ReadFile(backup + "/manifest.json").value_or("");
    EXPECT_NE(manifest.find(R"("role": "store-dump")"), std::string::npos) << manifest;
    EXPECT_EQ(manifest.find(pg_.url()), std::string::npos);  // no connection settings in it

    // What pg_restore finds in the dump: the store's tables, in the test's schema alone.
    std::string listing;
    if (FILE* list = ::popen(("pg_restore --list " + backup + "/store.pgdump").c_str(), "r")) {
        char buffer[4096];
        while (std::fgets(buffer, sizeof buffer, list) != nullptr) listing += buffer;
        ::pclose(list);
    }
    EXPECT_NE(listing.find("TABLE " + pg_.schema() + " jobs"), std::string::npos) << listing;
    EXPECT_NE(listing.find("TABLE DATA " + pg_.schema() + " messages"), std::string::npos);
    EXPECT_NE(listing.find("TABLE DATA " + pg_.schema() + " audit_records"), std::string::npos);
    EXPECT_EQ(listing.find("TABLE public "), std::string::npos) << listing;

    const std::string sqlite =
        ConfigFile("sqlite.json", "", (dir / "restored.db").string(), (dir / "audit.log").string());
    std::ostringstream restored, refused;
    EXPECT_EQ(adapter::RunRestore({sqlite, backup}, restored, refused), 2);
    EXPECT_NE(refused.str().find("holds a PostgreSQL store"), std::string::npos) << refused.str();
    EXPECT_FALSE(std::filesystem::exists(dir / "restored.db"));
}

// `microcare restore` of a PostgreSQL store: only a backup that matches its sealed manifest, only
// into the store's schema and only when it is empty; then the jobs and the one trail are back,
// the trail verifies with the restore recorded in it, and a replica started on it knows the
// message it acknowledged before.
TEST_F(ReplicasTest, ARestoreOfThePostgresStorePutsJobsAndTrailBackIntoItsEmptySchema) {
    const std::string a = StartReplica();
    ASSERT_FALSE(a.empty());
    const std::string message =
        MessageBundle("msg-restore", "hdr-restore", "Encounter/enc-mn-20261120");
    ASSERT_LT(PostJson(a + "/$process-message", message).status, 300u);
    ASSERT_TRUE(WaitFor([&] { return AllDone(1); }));
    for (auto& replica : replicas_) replica->Stop();
    replicas_.clear();

    const std::filesystem::path dir = dirs_.front();
    const std::string postgres = ConfigFile("postgres.json", pg_.url());
    const std::string backup = (dir / "backup").string();
    std::ostringstream backed_up, backup_err;
    ASSERT_EQ(adapter::RunBackup({postgres, backup}, backed_up, backup_err), 0) << backup_err.str();
    const adapter::AuditReport before = VerifyTrailInDatabase();
    ASSERT_TRUE(before.intact()) << Problems(before);
    const auto restore = [&](const std::string& config, const std::string& from,
                             std::string& said) {
        std::ostringstream out, err;
        const int code = adapter::RunRestore({config, from}, out, err);
        said = out.str() + err.str();
        return code;
    };
    std::string said;

    // Over the live store: refused, nothing touched.
    EXPECT_EQ(restore(postgres, backup, said), 1);
    EXPECT_NE(said.find("already holds"), std::string::npos) << said;
    EXPECT_EQ(VerifyTrailInDatabase().head_seq, before.head_seq);

    // Into another schema than the one the store was dumped from: pg_restore would put it
    // back into the old one, where the configuration does not look.
    adapter::test_support::PgTestSchema other;
    ASSERT_TRUE(other.available());
    EXPECT_EQ(restore(ConfigFile("other.json", other.url()), backup, said), 2);
    EXPECT_NE(said.find("the backup's store is in schema " + pg_.schema()), std::string::npos)
        << said;
    EXPECT_EQ(other.Query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"),
              "0");

    // The database is lost: its schema comes back empty.
    ASSERT_TRUE(
        pg_.Query("DROP SCHEMA " + pg_.schema() + " CASCADE; CREATE SCHEMA " + pg_.schema()));

    // A dump that is not the one the manifest sealed is never handed to pg_restore.
    const std::filesystem::path edited = dir / "edited";
    std::filesystem::copy(backup, edited);
    {
        std::fstream dump(edited / "store.pgdump", std::ios::in | std::ios::out | std::ios::binary);
        dump.seekp(-8, std::ios::end);
        dump.put('\x55');
    }
    EXPECT_EQ(restore(postgres, edited.string(), said), 2);
    EXPECT_NE(said.find("store.pgdump: its SHA-256 differs"), std::string::npos) << said;
    EXPECT_EQ(pg_.Query("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"), "0");

    ASSERT_EQ(restore(postgres, backup, said), 0) << said;
    EXPECT_NE(said.find("records, verified) into the store's database"), std::string::npos) << said;
    EXPECT_TRUE(AllDone(1));
    const adapter::AuditReport after = VerifyTrailInDatabase();
    EXPECT_TRUE(after.intact()) << Problems(after);
    // The backup's own record came after the dump and is not in it; the restore's is.
    EXPECT_EQ(after.head_seq, before.head_seq);
    std::string problem;
    auto copy = adapter::CopyTrailFromDatabase(pg_.url(), {}, problem);
    ASSERT_TRUE(copy) << problem;
    const auto records = adapter::QueryTrail(copy->path, {}, {});
    ASSERT_FALSE(records.empty());
    EXPECT_EQ(records.back().record.event, "restore");

    // A replica on the restored store answers the re-sent message from it: no second job.
    const std::string b = StartReplica();
    ASSERT_FALSE(b.empty());
    EXPECT_EQ(PostJson(b + "/$process-message", message).status, 200u);
    EXPECT_EQ(Jobs().size(), 1u);
}

class ReplicaProcessTest : public SharedStoreTest {
protected:
    void SetUp() override {
        SharedStoreTest::SetUp();
        if (IsSkipped()) return;
        for (int i = 0; i < kEncounters; ++i) {
            ehr_->Put(MicroneedlingEncounter("enc-r" + std::to_string(i), "pat-chloe-besson",
                                             "2026-11-20T10:00:00+01:00"));
        }
        // Slow transactions keep jobs in flight when a replica dies.
        ehr_->InjectFault(
            "POST", "", Fault::Delay(std::chrono::milliseconds(150)).OnlyIfBody("\"transaction\""),
            1000);
    }

    // The configuration of one replica: the shared store, and so the shared trail.
    std::string ReplicaConfig() {
        dirs_.push_back(FreshDirectory("replica-process" + std::to_string(dirs_.size())));
        const auto& dir = dirs_.back();
        const std::string path = (dir / "microcare.json").string();
        std::ofstream(path) << R"({
          "server": {"listen": "127.0.0.1", "port": 0, "auth": {"bearerTokens": [")"
                            << kToken << R"("]}},
          "store": {"url": ")"
                            << pg_.url() << R"("},
          "worker": {"concurrency": 4, "leaseSeconds": 1, "backoffInitialMs": 20,
                     "backoffMaxMs": 200, "pollIntervalMs": 1000, "maxAttempts": 50},
          "ehr": {"baseUrl": ")"
                            << ehr_->BaseUrl() << R"(", "requestTimeoutMs": 5000},
          "rules": {"path": ")"
                            << MICROCARE_SOURCE_DIR << R"(/config/rules/microneedling.json"},
          "log": {"level": "info"}
        })";
        return path;
    }

    static std::string Url(const ServeProcess& p) {
        return "http://127.0.0.1:" + std::to_string(p.port()) + "/fhir/$process-message";
    }

    // Sends one trigger per encounter, alternately to each replica; the encounters acknowledged.
    std::vector<int> SendAll(const std::vector<const ServeProcess*>& replicas) {
        std::vector<int> acknowledged;
        for (int i = 0; i < kEncounters; ++i) {
            const ServeProcess& to = *replicas[static_cast<std::size_t>(i) % replicas.size()];
            Reply reply =
                PostJson(Url(to), MessageBundle("r-" + std::to_string(i), "h-" + std::to_string(i),
                                                "Encounter/enc-r" + std::to_string(i)));
            if (reply.status == 200) acknowledged.push_back(i);
        }
        return acknowledged;
    }

    std::size_t CarePlansOf(int encounter) {
        return ehr_->Search("CarePlan", "encounter=Encounter/enc-r" + std::to_string(encounter))
            .size();
    }
    bool EachHasOneCarePlan(const std::vector<int>& encounters) {
        for (int i : encounters) {
            if (CarePlansOf(i) != 1) return false;
        }
        return true;
    }
    std::size_t MostCarePlansOfOneEncounter() {
        std::size_t most = 0;
        for (int i = 0; i < kEncounters; ++i) most = std::max(most, CarePlansOf(i));
        return most;
    }

    static constexpr int kEncounters = 24;
};

TEST_F(ReplicaProcessTest, AReplicaKilledWithJobsInFlightIsTakenOverAndEachTriggerLandsOnce) {
    const std::string config_a = ReplicaConfig();
    const std::string config_b = ReplicaConfig();
    std::vector<int> acknowledged;
    ServeProcess b(config_b);
    ASSERT_NE(b.port(), 0) << "replica b did not start";
    {
        ServeProcess a(config_a);
        ASSERT_NE(a.port(), 0) << "replica a did not start";
        acknowledged = SendAll({&a, &b});
        ASSERT_EQ(acknowledged.size(), static_cast<std::size_t>(kEncounters));
        ASSERT_TRUE(WaitFor([&] { return ehr_->Count("CarePlan") >= 2; }));
        a.Signal(SIGKILL);  // with jobs leased, some mid-transaction
    }
    ASSERT_LT(ehr_->Count("CarePlan"), static_cast<std::size_t>(kEncounters))
        << "too late to test anything";
    // b takes over a's jobs once their leases run out, and finishes everything.
    EXPECT_TRUE(
        WaitFor([&] { return EachHasOneCarePlan(acknowledged); }, std::chrono::seconds(60)));
    EXPECT_EQ(MostCarePlansOfOneEncounter(), 1u);
    b.Signal(SIGTERM);
    // A replica killed mid-append leaves an aborted transaction, never a torn record.
    const adapter::AuditReport trail = VerifyTrailInDatabase();
    EXPECT_TRUE(trail.intact()) << Problems(trail);
    EXPECT_GE(trail.head_seq, static_cast<std::uint64_t>(kEncounters));
}

TEST_F(ReplicaProcessTest, EveryDatabaseConnectionKilledMidWorkLosesNothing) {
    ServeProcess a(ReplicaConfig());
    ServeProcess b(ReplicaConfig());
    ASSERT_NE(a.port(), 0);
    ASSERT_NE(b.port(), 0);
    const std::vector<int> acknowledged = SendAll({&a, &b});
    ASSERT_EQ(acknowledged.size(), static_cast<std::size_t>(kEncounters));
    ASSERT_TRUE(WaitFor([&] { return ehr_->Count("CarePlan") >= 2; }));
    // What a database failover or a network cut does to the replicas' sessions.
    ASSERT_TRUE(
        pg_.Query("SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity WHERE "
                  "application_name = current_setting('application_name') AND "
                  "pid <> pg_backend_pid()"));
    EXPECT_TRUE(
        WaitFor([&] { return EachHasOneCarePlan(acknowledged); }, std::chrono::seconds(60)));
    EXPECT_EQ(MostCarePlansOfOneEncounter(), 1u);
    // And the replicas still take triggers.
    Reply reply = PostJson(Url(a), MessageBundle("after", "after-h", "Encounter/enc-r0"));
    EXPECT_EQ(reply.status, 200u) << reply.error << reply.body;
    a.Signal(SIGTERM);
    b.Signal(SIGTERM);
    const adapter::AuditReport trail = VerifyTrailInDatabase();
    EXPECT_TRUE(trail.intact()) << Problems(trail);
}

}  // namespace
}  // namespace microcare::testing
