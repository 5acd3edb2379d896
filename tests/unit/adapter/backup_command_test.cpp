// `microcare backup` and `microcare restore` as an admin meets them: a backup restores into
// another place and verifies there; a restore refuses, before replacing anything, a backup that
// did not finish, lost a file, was edited (even with its manifest made to match), or whose
// manifest points outside it, and refuses while the service holds the trail.
#include "adapter/backup_command.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "adapter/audit/audit_file.hpp"
#include "adapter/audit/audit_key.hpp"
#include "adapter/audit/audit_log.hpp"
#include "adapter/audit/audit_verify.hpp"
#include "adapter/backup_manifest.hpp"
#include "adapter/file_io.hpp"
#include "adapter/restore_command.hpp"
#include "adapter/store/job_store.hpp"
#include "tests/unit/adapter/store/store_test_support.hpp"

namespace microcare::adapter {
namespace {

namespace fs = std::filesystem;
using test_support::TempDirectory;

constexpr const char* kKey = "0123456789abcdef0123456789abcdef0123456789abcdef";

class BackupCommandTest : public ::testing::Test {
protected:
    BackupCommandTest() {
        std::ofstream(dir_.File("audit.key")) << kKey << "\n";
        live_ = WriteConfig("live");
        restored_ = WriteConfig("restored");
        // A live service's files: a store with jobs, a keyed trail with its checkpoint, a pack.
        fs::create_directories(dir_.File("live/rules"));
        fs::copy_file(MICROCARE_SOURCE_DIR "/config/rules/microneedling.json",
                      dir_.File("live/rules/microneedling.json"));
        auto store = std::move(*JobStore::Open(dir_.File("live/microcare.db")));
        for (int i = 0; i < 3; ++i) {
            NewJob job;
            job.trigger_key = "k" + std::to_string(i);
            job.encounter = "Encounter/e" + std::to_string(i);
            job.kind = "process-message";
            job.payload = "{}";
            EXPECT_TRUE(store->Enqueue(std::move(job)));
        }
        store->Close();
        AuditSettings audit;
        audit.path = dir_.File("live/audit.log");
        audit.key = kKey;
        audit.rotate_bytes = 600;  // a few rotated files to copy and restore
        auto trail = std::move(*AuditLog::Open(audit));
        for (int i = 0; i < 5; ++i) {
            EXPECT_TRUE(trail->Append("trigger", {{"job", std::to_string(i)}}));
        }
        EXPECT_TRUE(trail->Close());
    }

    std::string WriteConfig(const std::string& name) {
        fs::create_directories(dir_.File(name));
        const std::string path = dir_.File(name + "/microcare.json");
        std::ofstream(path) << R"({"server": {"auth": {"allowAnonymous": true}},
            "ehr": {"baseUrl": "https://ehr.example/fhir"},
            "store": {"path": "./microcare.db"},
            "audit": {"path": "./audit.log", "keyFile": "../audit.key"},
            "rules": {"path": "./rules/microneedling.json"}})";
        return path;
    }

    int Backup(const std::string& folder) { return Run(RunBackup, live_, folder); }
    int Restore(const std::string& folder) { return Run(RunRestore, restored_, folder); }

    int Run(int (*command)(const BackupArgs&, std::ostream&, std::ostream&),
            const std::string& config, const std::string& folder) {
        std::ostringstream out;
        std::ostringstream err;
        const int code = command(BackupArgs{config, folder}, out, err);
        out_ = out.str();
        err_ = err.str();
        return code;
    }

    // Rewrites the manifest's entry for `relative` to the file as it is now; `reseal` with the
    // trail's key, as only someone holding it could.
    void MatchManifest(const std::string& folder, const std::string& relative, bool reseal) {
        const std::string path = folder + "/" + kManifestName;
        fhir::IssueList issues;
        auto manifest = *ParseManifest(*ReadFile(path), issues);
        for (BackupFile& file : manifest.files) {
            if (file.path != relative) continue;
            auto digest = *DigestFile(folder + "/" + relative);
            file.bytes = digest.bytes;
            file.sha256 = digest.sha256;
        }
        if (reseal) SealManifest(manifest, *ChainKey::Hmac(kKey));
        std::ofstream(path, std::ios::trunc) << ManifestJson(manifest);
    }

    bool RestoredNothing() const { return !fs::exists(dir_.File("restored/microcare.db")); }

    TempDirectory dir_;
    std::string live_;
    std::string restored_;
    std::string out_;
    std::string err_;
};

TEST_F(BackupCommandTest, ABackupRestoresElsewhereAndItsTrailVerifiesThere) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    // The backup itself is in the live trail (no service holds it here: the command wrote it).
    EXPECT_NE(ReadFile(dir_.File("live/audit.log"))->find("\"event\":\"backup\""),
              std::string::npos);
    ASSERT_EQ(Restore(folder), 0) << err_;

    auto store = std::move(*JobStore::Open(dir_.File("restored/microcare.db")));
    EXPECT_EQ(*store->CountByState(JobState::kQueued), 3u);
    store->Close();
    EXPECT_EQ(*ReadFile(dir_.File("restored/rules/microneedling.json")),
              *ReadFile(dir_.File("live/rules/microneedling.json")));
    AuditSettings audit;
    audit.path = dir_.File("restored/audit.log");
    audit.key = kKey;
    const AuditReport report = VerifyTrail(*ConfiguredTrail(audit));
    EXPECT_TRUE(report.intact()) << report.problems.front().message;
    EXPECT_GT(report.files.size(), 1u) << "the rotated files too";
    // The five records and the restore, which names the backup.
    const std::string trail = *ReadFile(audit.path);
    EXPECT_NE(trail.find("\"event\":\"restore\""), std::string::npos) << trail;
    EXPECT_EQ(trail.find("\"event\":\"backup\""), std::string::npos)
        << "the backup's own record belongs to the live trail only";
}

TEST_F(BackupCommandTest, ABackupWhileTheTrailIsWrittenRotatedAndCheckpointedVerifies) {
    // The service's part: appends without pause, a checkpoint every 3 records and a rotation
    // every few, so that both move while the backup copies. A rotation in the middle of the copy
    // leaves the active file missing for a moment, or a file renamed under the copy; the copy
    // must still be whole and verify. (That the checkpoint is copied before the trail, this
    // cannot show: an append would have to land in the microseconds between the two.)
    AuditSettings audit;
    audit.path = dir_.File("live/audit.log");
    audit.key = kKey;
    audit.rotate_bytes = 1500;
    audit.checkpoint_every = 3;
    auto trail = std::move(*AuditLog::Open(audit));
    std::atomic<bool> stop{false};
    std::atomic<int> appended{0};
    std::thread writer([&] {
        while (!stop) {
            if (!trail->Append("trigger", {{"job", std::to_string(appended.load())}})) break;
            ++appended;
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        }
    });
    int verified = 0;
    for (int i = 0; i < 15; ++i) {
        const int before = appended;
        const int code = Backup(dir_.File("while-" + std::to_string(i)));
        EXPECT_EQ(code, 0) << err_;
        verified += code == 0 && appended > before;
    }
    stop = true;
    writer.join();
    EXPECT_TRUE(trail->Close());
    EXPECT_GT(verified, 0) << "no backup overlapped an append";
    auto last = *ParseManifest(*ReadFile(dir_.File("while-14/") + kManifestName),
                               *std::make_unique<fhir::IssueList>());
    std::size_t rotated = 0;
    for (const BackupFile& file : last.files)
        rotated += file.role == BackupFile::Role::kAuditRotated;
    EXPECT_GT(rotated, 1u) << "the trail did not rotate";
}

TEST_F(BackupCommandTest, RestoreMovesWhatWasThereAsideInsteadOfDeletingIt) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    ASSERT_EQ(Restore(folder), 0) << err_;
    ASSERT_EQ(Restore(folder), 0) << err_;  // over the first restore
    std::size_t aside = 0;
    for (const auto& entry : fs::directory_iterator(dir_.File("restored"))) {
        if (!entry.path().filename().string().starts_with("microcare-pre-restore-")) continue;
        ++aside;
        EXPECT_TRUE(fs::exists(entry.path() / "microcare.db"));
        EXPECT_TRUE(fs::exists(entry.path() / "audit.log"));
    }
    EXPECT_EQ(aside, 1u) << out_;
}

TEST_F(BackupCommandTest, ABackupGoesIntoANewFolderOnly) {
    fs::create_directories(dir_.File("full"));
    std::ofstream(dir_.File("full/x")) << "x";
    EXPECT_EQ(Backup(dir_.File("full")), 2);
    EXPECT_NE(err_.find("not empty"), std::string::npos) << err_;
}

TEST_F(BackupCommandTest, AnEditedStoreCopyIsRefusedBeforeAnythingIsReplaced) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    {
        std::fstream store(folder + "/store.db", std::ios::in | std::ios::out | std::ios::binary);
        store.seekp(200);
        store.put('\x7f');
    }
    EXPECT_EQ(Restore(folder), 2);
    EXPECT_NE(err_.find("store.db: its SHA-256 differs"), std::string::npos) << err_;
    EXPECT_TRUE(RestoredNothing());
}

TEST_F(BackupCommandTest, AStoreEditedWithItsManifestLineIsRefusedByTheSeal) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    {
        std::fstream store(folder + "/store.db", std::ios::in | std::ios::out | std::ios::binary);
        store.seekp(200);
        store.put('\x7f');
    }
    MatchManifest(folder, "store.db", false);
    EXPECT_EQ(Restore(folder), 2);
    EXPECT_NE(err_.find("manifest.json: its seal does not verify"), std::string::npos) << err_;
    EXPECT_TRUE(RestoredNothing());
}

TEST_F(BackupCommandTest, AnEditedTrailIsRefusedEvenWithItsManifestResealed) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    // One record changed, in whichever file of the copied trail holds it.
    std::string edited;
    for (const auto& entry : fs::directory_iterator(folder + "/audit")) {
        std::string trail = *ReadFile(entry.path().string());
        const auto at = trail.find("\"job\":\"3\"");
        if (at == std::string::npos) continue;
        trail[at + 7] = '4';
        std::ofstream(entry.path(), std::ios::trunc) << trail;
        edited = "audit/" + entry.path().filename().string();
    }
    ASSERT_FALSE(edited.empty());
    MatchManifest(folder, edited, true);
    EXPECT_EQ(Restore(folder), 2);
    EXPECT_NE(err_.find("edited"), std::string::npos) << err_;
    EXPECT_NE(err_.find("does not verify"), std::string::npos) << err_;
    EXPECT_TRUE(RestoredNothing());
}

TEST_F(BackupCommandTest, AMissingFileOrManifestIsAnIncompleteBackup) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    fs::remove(folder + "/checkpoint/audit.log.checkpoint");
    EXPECT_EQ(Restore(folder), 2);
    EXPECT_NE(err_.find("audit.log.checkpoint: missing"), std::string::npos) << err_;
    fs::remove(folder + "/" + kManifestName);
    EXPECT_EQ(Restore(folder), 2);
    EXPECT_NE(err_.find("manifest.json"), std::string::npos) << err_;
    EXPECT_NE(err_.find("did not finish"), std::string::npos) << err_;
    EXPECT_TRUE(RestoredNothing());
}

TEST_F(BackupCommandTest, AManifestThatPointsOutsideTheBackupIsRefused) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    std::string manifest = *ReadFile(folder + "/" + kManifestName);
    const auto at = manifest.find("\"store.db\"");
    ASSERT_NE(at, std::string::npos);
    manifest.replace(at, 10, "\"../../live/microcare.db\"");
    std::ofstream(folder + "/" + kManifestName, std::ios::trunc) << manifest;
    EXPECT_EQ(Restore(folder), 2);
    EXPECT_NE(err_.find("files[0].path: \"../../live/microcare.db\" is not a relative path"),
              std::string::npos)
        << err_;
    EXPECT_TRUE(RestoredNothing());
}

TEST_F(BackupCommandTest, AManifestThatPutsAFileInTheWrongPlaceIsRefused) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    // A trail file named like the store would land beside the trail, over the store.
    fs::copy_file(folder + "/store.db", folder + "/audit/microcare.db");
    std::string manifest = *ReadFile(folder + "/" + kManifestName);
    const auto at = manifest.find("\"audit/audit.log\"");
    ASSERT_NE(at, std::string::npos);
    manifest.replace(at, 17, "\"audit/microcare.db\"");
    std::ofstream(folder + "/" + kManifestName, std::ios::trunc) << manifest;
    MatchManifest(folder, "audit/microcare.db", true);  // even sealed by someone with the key
    EXPECT_EQ(Restore(folder), 2);
    EXPECT_NE(err_.find("the trail's files there are not those the manifest lists"),
              std::string::npos)
        << err_;
    EXPECT_TRUE(RestoredNothing());
}

TEST_F(BackupCommandTest, RestoreRefusesWhileTheServiceHoldsTheTrail) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    auto held = TrailLock::Acquire(dir_.File("restored/audit.log"));  // as a running service
    ASSERT_TRUE(held);
    EXPECT_EQ(Restore(folder), 1);
    EXPECT_NE(err_.find("the service is running"), std::string::npos) << err_;
    EXPECT_TRUE(RestoredNothing());
}

TEST_F(BackupCommandTest, ATrailThatDoesNotVerifyWithTheRestoringKeyIsRefused) {
    const std::string folder = dir_.File("backup-1");
    ASSERT_EQ(Backup(folder), 0) << err_;
    std::ofstream(dir_.File("audit.key"), std::ios::trunc)
        << "fedcba9876543210fedcba9876543210fedcba9876543210\n";
    EXPECT_EQ(Restore(folder), 2);
    EXPECT_NE(err_.find("does not verify"), std::string::npos) << err_;
    EXPECT_TRUE(RestoredNothing());
}

}  // namespace
}  // namespace microcare::adapter
