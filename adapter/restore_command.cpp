#include "adapter/restore_command.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <ostream>
#include <vector>

#include "adapter/admin_audit.hpp"
#include "adapter/audit/audit_file.hpp"
#include "adapter/audit/audit_file_set.hpp"
#include "adapter/audit/audit_verify.hpp"
#include "adapter/audit_commands.hpp"
#include "adapter/backup_manifest.hpp"
#include "adapter/clock.hpp"
#include "adapter/file_copy.hpp"
#include "adapter/file_io.hpp"
#include "adapter/issue_report.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"
#include "adapter/store/sqlite_backup.hpp"
#include "fhir/date_time.hpp"

namespace microcare::adapter {
namespace {

namespace fs = std::filesystem;
using Role = BackupFile::Role;

// Every file the manifest lists is there, with its size and SHA-256; each problem on `err`.
bool FilesMatch(const fs::path& dir, const BackupManifest& manifest, std::ostream& err) {
    bool ok = true;
    for (std::size_t i = 0; i < manifest.files.size(); ++i) {
        const BackupFile& file = manifest.files[i];
        const std::string where = (dir / file.path).string();
        const std::string at = "files[" + std::to_string(i) + "]";
        auto digest = DigestFile(where);
        if (!digest) {
            err << where << ": missing (" << at << "): the backup is incomplete\n";
            ok = false;
        } else if (digest->bytes != file.bytes) {
            err << where << ": " << digest->bytes << " bytes, the manifest says " << file.bytes
                << " (" << at << ".bytes): cut or replaced\n";
            ok = false;
        } else if (digest->sha256 != file.sha256) {
            err << where << ": its SHA-256 differs from the manifest's (" << at
                << ".sha256): edited or damaged\n";
            ok = false;
        }
    }
    return ok;
}

// The backed-up trail verifies with the configured key against the backed-up checkpoint.
bool TrailVerifies(const fs::path& dir, const BackupManifest& manifest,
                   const TrailToVerify& configured, std::ostream& err) {
    TrailToVerify trail = configured;
    trail.path = (dir / manifest.Find(Role::kAuditActive)->path).string();
    const BackupFile* checkpoint = manifest.Find(Role::kAuditCheckpoint);
    trail.checkpoint_path = checkpoint ? (dir / checkpoint->path).string() : "";
    // The files placed are the manifest's, the files verified the folder's: they must agree.
    std::vector<std::string> listed;
    for (const BackupFile& file : manifest.files) {
        if (file.role == Role::kAuditRotated || file.role == Role::kAuditActive) {
            listed.push_back(fs::path(file.path).filename().string());
        }
    }
    std::vector<std::string> found;
    for (const TrailFile& file : ListTrailFiles(trail.path).files) found.push_back(file.name);
    std::sort(listed.begin(), listed.end());
    std::sort(found.begin(), found.end());
    if (listed != found) {
        err << (dir / "audit").string()
            << ": the trail's files there are not those the manifest lists; nothing was "
               "replaced\n";
        return false;
    }
    const AuditReport report = VerifyTrail(trail);
    WriteAuditProblems(trail, report, err);
    if (!report.intact()) {
        err << "the backed-up audit trail does not verify with the configured key "
               "(audit.keyFile); nothing was replaced\n";
        return false;
    }
    if (report.head_seq != manifest.trail_records) {
        err << trail.path << ": ends at record " << report.head_seq << ", the manifest says "
            << manifest.trail_records << " (trailRecords); nothing was replaced\n";
        return false;
    }
    return true;
}

// One file to put in place: from the backup to its target.
struct Placement {
    std::string from;
    std::string to;
    unsigned mode = 0640;
};

// Moves what is at `path` (if anything) into the `aside` folder beside it.
bool MoveAside(const std::string& path, const std::string& stamp, std::ostream& err,
               std::vector<std::string>& moved) {
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(path, ec))) return true;
    const fs::path target(path);
    const fs::path aside = target.parent_path() / ("microcare-pre-restore-" + stamp);
    fs::create_directories(aside, ec);
    fs::rename(target, aside / target.filename(), ec);
    if (ec) {
        err << path << ": cannot be moved aside to " << aside.string() << " (" << ec.message()
            << "); restore stopped here\n";
        return false;
    }
    moved.push_back(path + " -> " + (aside / target.filename()).string());
    return true;
}

// Copies beside the target under a name of its own, then renames it into place: the target is
// the old file or the new one, never half of it. Run as root, the file gets the owner of its
// folder (the service's user for /var/lib/microcare), so that the service can write it.
bool Place(const Placement& placement, std::ostream& err) {
    const fs::path to(placement.to);
    const fs::path temporary =
        to.parent_path() / (".microcare-restoring-" + to.filename().string());
    std::error_code ec;
    fs::remove(temporary, ec);
    auto copied = CopyRegularFile(placement.from, temporary.string(), placement.mode);
    if (copied) copied = SyncFile(temporary.string());
    if (!copied) {
        err << placement.to << ": cannot be written (" << copied.error().message() << ")\n";
        return false;
    }
    struct stat folder {};
    if (::geteuid() == 0 && ::stat(to.parent_path().c_str(), &folder) == 0 &&
        ::chown(temporary.c_str(), folder.st_uid, folder.st_gid) != 0) {
        err << placement.to << ": cannot be given its folder's owner\n";
        return false;
    }
    fs::rename(temporary, to, ec);
    if (ec || !SyncDirectoryOf(placement.to)) {
        err << placement.to << ": cannot be put in place (" << ec.message() << ")\n";
        return false;
    }
    return true;
}

std::string Stamp() {
    std::string stamp = fhir::FormatInstant(SystemNow(), 0);  // 2026-12-05T21:30:00+00:00
    std::string out;
    for (char c : stamp.substr(0, 19)) {
        if (c != '-' && c != ':') out += c;
    }
    return out + "Z";
}

}  // namespace

int RunRestore(const BackupArgs& args, std::ostream& out, std::ostream& err) {
    auto config = LoadServiceConfig(args.config_path, err);
    if (!config) return 2;
    const ServiceConfig& settings = *config;
    if (!settings.store.IsFile()) {
        err << "store.url: a PostgreSQL store is restored with pg_restore from the backup's "
               "store.pgdump, into an empty database before the replicas start (config/README.md, "
               "\"The PostgreSQL store\"); this command restores a SQLite store\n";
        return 2;
    }
    std::error_code ec;
    for (const std::string& path : {settings.store.path, settings.audit.path}) {
        fs::create_directories(fs::path(path).parent_path(), ec);
    }
    // Held to the end: the service cannot start on a half-restored trail, and one that runs
    // holds it already.
    std::optional<TrailLock> lock;
    if (auto acquired = TrailLock::Acquire(settings.audit.path)) {
        lock.emplace(std::move(*acquired));
    } else {
        err << "the service is running: it holds the audit trail's lock (" << settings.audit.path
            << ".lock); stop it first (systemctl stop microcare), then restore. Nothing was "
               "replaced\n";
        return 1;
    }

    const fs::path dir(args.dir);
    const std::string manifest_path = (dir / kManifestName).string();
    std::string why;
    auto text = ReadFile(manifest_path, &why, 16 * 1024 * 1024);
    if (!text) {
        err << manifest_path << ": " << why
            << ": not a backup, or one that did not finish (its manifest is written last). "
               "Nothing was replaced\n";
        return 2;
    }
    fhir::IssueList manifest_issues;
    auto manifest = ParseManifest(*text, manifest_issues);
    if (!manifest) {
        ReportIssues(err, manifest_path, manifest_issues);
        ReportRefused(err, manifest_path, manifest_issues);
        return 2;
    }
    auto configured = ConfiguredTrail(settings.audit);
    if (!configured) {
        err << args.config_path << ": error: audit.keyFile: the key cannot be used\n";
        return 2;
    }
    // The seal first: with the key, an edited file cannot be hidden by editing its line too.
    const ChainKey key = configured->keys.empty() ? ChainKey() : configured->keys.front();
    if (!ManifestSealVerifies(*manifest, key)) {
        err << manifest_path
            << ": its seal does not verify with the configured key (audit.keyFile: " << key.id()
            << "; the backup names " << manifest->key_id
            << "): edited, or taken with another key. Nothing was replaced\n";
        return 2;
    }
    if (!FilesMatch(dir, *manifest, err)) {
        err << args.dir
            << ": refused: the backup does not match its manifest; nothing was "
               "replaced\n";
        return 2;
    }
    if (manifest->Find(Role::kStore) == nullptr) {
        err << args.dir
            << ": holds a PostgreSQL store (store.pgdump), not a SQLite one: restore it "
            << "with pg_restore; nothing was replaced\n";
        return 2;
    }
    const std::string store_copy = (dir / manifest->Find(Role::kStore)->path).string();
    if (std::string problem = ProblemWithStoreCopy(store_copy); !problem.empty()) {
        err << store_copy << ": " << problem << "; nothing was replaced\n";
        return 2;
    }
    if (!TrailVerifies(dir, *manifest, *configured, err)) return 2;
    // Records name the files they continue from: a trail keeps its file name.
    const std::string backed_up_name =
        fs::path(manifest->Find(Role::kAuditActive)->path).filename().string();
    if (backed_up_name != FileName(settings.audit.path)) {
        err << args.config_path << ": audit.path: the trail's file is named " << backed_up_name
            << " in the backup (its records name their files): name it so; nothing was "
               "replaced\n";
        return 2;
    }

    // What goes where. The pack only when the configuration names its place (the shipped one
    // belongs to the package) and it differs.
    std::vector<Placement> placements;
    std::vector<std::string> targets;  // what is moved aside first
    placements.push_back({store_copy, settings.store.path, 0600});
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        targets.push_back(settings.store.path + suffix);  // a stale WAL would be replayed
    }
    const fs::path audit_dir = fs::path(settings.audit.path).parent_path();
    for (const TrailFile& file : ListTrailFiles(settings.audit.path).files) {
        targets.push_back(file.path);
    }
    const std::string checkpoint = CheckpointPathOf(settings.audit);
    targets.push_back(checkpoint);
    std::string notes;
    for (const BackupFile& file : manifest->files) {
        const std::string from = (dir / file.path).string();
        const std::string name = fs::path(file.path).filename().string();
        switch (file.role) {
            case Role::kAuditCheckpoint:
                placements.push_back({from, checkpoint});
                break;
            case Role::kAuditRotated:
                placements.push_back({from, (audit_dir / name).string()});
                break;
            case Role::kAuditActive:
                placements.push_back({from, settings.audit.path});
                break;
            case Role::kRulePack:
            case Role::kValueSet: {
                if (settings.rules_path.empty()) {
                    notes =
                        "rule pack: not restored (the configuration names no rules.path; "
                        "the backup's is in " +
                        (dir / "rules").string() + ")";
                    break;
                }
                const fs::path pack_dir = fs::path(settings.rules_path).parent_path();
                const std::string to = file.role == Role::kRulePack
                                           ? settings.rules_path
                                           : (pack_dir / file.path.substr(6)).string();  // rules/
                auto current = DigestFile(to);
                if (current && current->sha256 == file.sha256) break;  // already so
                fs::create_directories(fs::path(to).parent_path(), ec);
                targets.push_back(to);
                placements.push_back({from, to});
                break;
            }
            case Role::kConfig: {
                auto current = DigestFile(args.config_path);
                if (!current || current->sha256 != file.sha256) {
                    notes += std::string(notes.empty() ? "" : "; ") +
                             "configuration: " + args.config_path + " differs from the backup's (" +
                             from + "), kept as it is: compare them";
                }
                break;
            }
            case Role::kStore:
            case Role::kStoreDump:
                break;
        }
    }

    const std::string stamp = Stamp();
    std::vector<std::string> moved;
    for (const std::string& target : targets) {
        if (!MoveAside(target, stamp, err, moved)) return 1;
    }
    for (const Placement& placement : placements) {
        if (!Place(placement, err)) {
            err << "restore stopped part-way: what was there is in microcare-pre-restore-" << stamp
                << "/; run restore again once the cause is fixed\n";
            return 1;
        }
    }

    out << "restored " << args.dir << " (taken " << manifest->created_at << " by " << manifest->user
        << "): store " << settings.store.path << ", audit trail " << settings.audit.path << " ("
        << manifest->trail_records << " records), checkpoint " << checkpoint << "\n";
    for (const std::string& line : moved) out << "moved aside: " << line << "\n";
    if (!notes.empty()) out << notes << "\n";

    // Recorded in the restored trail, through the restored store's admin notes: written now
    // (this command holds the trail) or by the service when it starts.
    auto store = JobStore::Open(settings.store.path);
    if (!store) {
        err << settings.store.path << ": the restored store cannot be opened ("
            << store.error().message() << ")\n";
        return 1;
    }
    AdminNote note;
    note.event = "restore";
    note.fields = {{"user", OsUser()},
                   {"folder", fs::absolute(dir, ec).string()},
                   {"backupCreatedAt", manifest->created_at},
                   {"trailRecords", std::to_string(manifest->trail_records)}};
    const bool noted = static_cast<bool>((*store)->AddAdminNote(std::move(note)));
    lock.reset();  // RecordAdminNotes opens the trail, which takes the lock itself
    if (noted) RecordAdminNotes(&settings.audit, **store, out);
    (*store)->Close();
    return 0;
}

}  // namespace microcare::adapter
