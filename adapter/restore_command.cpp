#include "adapter/restore_command.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
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
#include "adapter/configured_trail.hpp"
#include "adapter/file_copy.hpp"
#include "adapter/file_io.hpp"
#include "adapter/issue_report.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"
#include "adapter/store/pg_dump.hpp"
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

// A backup whose manifest is there, sealed with the configured key, and whose files are all as
// it lists them, with the configured trail's keys to verify its trail with.
struct CheckedBackup {
    BackupManifest manifest;
    TrailToVerify configured;
};

// Reads and checks the backup in args.dir; nullopt after saying why on `err` (exit 2).
std::optional<CheckedBackup> CheckBackup(const BackupArgs& args, const ServiceConfig& settings,
                                         std::ostream& err) {
    const fs::path dir(args.dir);
    const std::string manifest_path = (dir / kManifestName).string();
    std::string why;
    auto text = ReadFile(manifest_path, &why, 16 * 1024 * 1024);
    if (!text) {
        err << manifest_path << ": " << why
            << ": not a backup, or one that did not finish (its manifest is written last). "
               "Nothing was replaced\n";
        return std::nullopt;
    }
    fhir::IssueList manifest_issues;
    auto manifest = ParseManifest(*text, manifest_issues);
    if (!manifest) {
        ReportIssues(err, manifest_path, manifest_issues);
        ReportRefused(err, manifest_path, manifest_issues);
        return std::nullopt;
    }
    auto configured = ConfiguredTrail(settings.audit);
    if (!configured) {
        err << args.config_path << ": error: audit.keyFile: the key cannot be used\n";
        return std::nullopt;
    }
    // The seal first: with the key, an edited file cannot be hidden by editing its line too.
    const ChainKey key = configured->keys.empty() ? ChainKey() : configured->keys.front();
    if (!ManifestSealVerifies(*manifest, key)) {
        err << manifest_path
            << ": its seal does not verify with the configured key (audit.keyFile: " << key.id()
            << "; the backup names " << manifest->key_id
            << "): edited, or taken with another key. Nothing was replaced\n";
        return std::nullopt;
    }
    if (!FilesMatch(dir, *manifest, err)) {
        err << args.dir
            << ": refused: the backup does not match its manifest; nothing was "
               "replaced\n";
        return std::nullopt;
    }
    return CheckedBackup{std::move(*manifest), std::move(*configured)};
}

// Files to put in place, what to move aside first, and what the summary must mention.
struct Plan {
    std::vector<Placement> placements;
    std::vector<std::string> targets;
    std::string notes;
};

// The rule pack where the configuration names its place (the shipped one belongs to the
// package) and it differs; the configuration itself is only compared (it names where things go).
void PlanPackAndConfig(const fs::path& dir, const BackupManifest& manifest,
                       const ServiceConfig& settings, const std::string& config_path, Plan& plan) {
    std::error_code ec;
    for (const BackupFile& file : manifest.files) {
        const std::string from = (dir / file.path).string();
        if (file.role == Role::kConfig) {
            auto current = DigestFile(config_path);
            if (!current || current->sha256 != file.sha256) {
                plan.notes += std::string(plan.notes.empty() ? "" : "; ") +
                              "configuration: " + config_path + " differs from the backup's (" +
                              from + "), kept as it is: compare them";
            }
            continue;
        }
        if (file.role != Role::kRulePack && file.role != Role::kValueSet) continue;
        if (settings.rules_path.empty()) {
            const std::string note =
                "rule pack: not restored (the configuration names no "
                "rules.path; the backup's is in " +
                (dir / "rules").string() + ")";
            if (plan.notes.find(note) == std::string::npos) {
                plan.notes += std::string(plan.notes.empty() ? "" : "; ") + note;
            }
            continue;
        }
        const fs::path pack_dir = fs::path(settings.rules_path).parent_path();
        const std::string to = file.role == Role::kRulePack
                                   ? settings.rules_path
                                   : (pack_dir / file.path.substr(6)).string();  // rules/
        auto current = DigestFile(to);
        if (current && current->sha256 == file.sha256) continue;  // already so
        fs::create_directories(fs::path(to).parent_path(), ec);
        plan.targets.push_back(to);
        plan.placements.push_back({from, to});
    }
}

// Moves the targets aside, then places the files; 0, or 1 after saying why on `err`.
int Carry(const Plan& plan, const std::string& stamp, std::vector<std::string>& moved,
          std::ostream& err) {
    for (const std::string& target : plan.targets) {
        if (!MoveAside(target, stamp, err, moved)) return 1;
    }
    for (const Placement& placement : plan.placements) {
        if (!Place(placement, err)) {
            err << "restore stopped part-way: what was there is in microcare-pre-restore-" << stamp
                << "/; run restore again once the cause is fixed\n";
            return 1;
        }
    }
    return 0;
}

// Records the restore in the restored trail, through the restored store's admin notes: written
// now, or by the service when it starts. `release` runs before the trail is opened (a trail in
// files is locked by whoever writes it).
int RecordRestore(const ServiceConfig& settings, const fs::path& dir,
                  const BackupManifest& manifest, const std::function<void()>& release,
                  std::ostream& out, std::ostream& err) {
    auto store = JobStore::Open(settings.store.Location());
    if (!store) {
        err << (settings.store.IsFile() ? settings.store.path : "store.url")
            << ": the restored store cannot be opened (" << store.error().message() << ")\n";
        return 1;
    }
    std::error_code ec;
    AdminNote note;
    note.event = "restore";
    note.fields = {{"user", OsUser()},
                   {"folder", fs::absolute(dir, ec).string()},
                   {"backupCreatedAt", manifest.created_at},
                   {"trailRecords", std::to_string(manifest.trail_records)}};
    const bool noted = static_cast<bool>((*store)->AddAdminNote(std::move(note)));
    release();
    if (noted) RecordAdminNotes(&settings.audit, **store, out);
    (*store)->Close();
    return 0;
}

// A PostgreSQL store: the dump into the store's empty schema with pg_restore, then its trail
// verified where it now is, then the rule pack.
int RestoreDatabase(const BackupArgs& args, const ServiceConfig& settings, std::ostream& out,
                    std::ostream& err) {
    auto backup = CheckBackup(args, settings, err);
    if (!backup) return 2;
    const BackupManifest& manifest = backup->manifest;
    const fs::path dir(args.dir);
    const BackupFile* dump = manifest.Find(Role::kStoreDump);
    if (dump == nullptr) {
        err << args.dir
            << ": holds a SQLite store (store.db), not a PostgreSQL one: restore it with a "
               "configuration that names store.path; nothing was replaced\n";
        return 2;
    }
    Plan plan;
    PlanPackAndConfig(dir, manifest, settings, args.config_path, plan);
    std::string problem;
    if (auto restored =
            RestorePostgresStore(settings.store.url, (dir / dump->path).string(), problem);
        !restored) {
        err << args.config_path << ": store.url: " << problem << "; nothing was replaced\n";
        return restored.error() == Error::kInvalidConfig ? 2 : 1;
    }
    // The dump matched the sealed manifest and its trail verified when it was taken; this
    // checks the restore put all of it back.
    auto trail = CopyTrailFromDatabase(settings.audit.database, backup->configured, problem);
    const AuditReport report = trail ? VerifyTrail(*trail) : AuditReport{};
    if (trail) WriteAuditProblems(*trail, report, err);
    if (!trail || !report.intact() || report.head_seq != manifest.trail_records) {
        err << "store.url: the store is restored, but its audit trail "
            << (trail ? "does not verify as the backup's (" + std::to_string(report.head_seq) +
                            " records; the manifest says " +
                            std::to_string(manifest.trail_records) + ")"
                      : "cannot be read (" + problem + ")")
            << ": do not start the replicas; see `microcare audit verify`\n";
        return 1;
    }
    std::vector<std::string> moved;
    if (int carried = Carry(plan, Stamp(), moved, err); carried != 0) return carried;
    out << "restored " << args.dir << " (taken " << manifest.created_at << " by " << manifest.user
        << "): store and audit trail (" << manifest.trail_records
        << " records, verified) into the store's database\n";
    for (const std::string& line : moved) out << "moved aside: " << line << "\n";
    if (!plan.notes.empty()) out << plan.notes << "\n";
    return RecordRestore(
        settings, dir, manifest, [] {}, out, err);
}

}  // namespace

int RunRestore(const BackupArgs& args, std::ostream& out, std::ostream& err) {
    auto config = LoadServiceConfig(args.config_path, err);
    if (!config) return 2;
    const ServiceConfig& settings = *config;
    if (!settings.store.IsFile()) return RestoreDatabase(args, settings, out, err);
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

    auto backup = CheckBackup(args, settings, err);
    if (!backup) return 2;
    const BackupManifest& manifest = backup->manifest;
    const fs::path dir(args.dir);
    if (manifest.Find(Role::kStore) == nullptr) {
        err << args.dir
            << ": holds a PostgreSQL store (store.pgdump), not a SQLite one: restore it with a "
               "configuration whose store.url names the database; nothing was replaced\n";
        return 2;
    }
    const std::string store_copy = (dir / manifest.Find(Role::kStore)->path).string();
    if (std::string problem = ProblemWithStoreCopy(store_copy); !problem.empty()) {
        err << store_copy << ": " << problem << "; nothing was replaced\n";
        return 2;
    }
    if (!TrailVerifies(dir, manifest, backup->configured, err)) return 2;
    // Records name the files they continue from: a trail keeps its file name.
    const std::string backed_up_name =
        fs::path(manifest.Find(Role::kAuditActive)->path).filename().string();
    if (backed_up_name != FileName(settings.audit.path)) {
        err << args.config_path << ": audit.path: the trail's file is named " << backed_up_name
            << " in the backup (its records name their files): name it so; nothing was "
               "replaced\n";
        return 2;
    }

    // What goes where: the store (a stale WAL would be replayed: moved aside too), the trail's
    // files and checkpoint, the pack.
    Plan plan;
    plan.placements.push_back({store_copy, settings.store.path, 0600});
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
        plan.targets.push_back(settings.store.path + suffix);
    }
    const fs::path audit_dir = fs::path(settings.audit.path).parent_path();
    for (const TrailFile& file : ListTrailFiles(settings.audit.path).files) {
        plan.targets.push_back(file.path);
    }
    const std::string checkpoint = CheckpointPathOf(settings.audit);
    plan.targets.push_back(checkpoint);
    for (const BackupFile& file : manifest.files) {
        const std::string from = (dir / file.path).string();
        if (file.role == Role::kAuditCheckpoint) {
            plan.placements.push_back({from, checkpoint});
        } else if (file.role == Role::kAuditRotated) {
            plan.placements.push_back(
                {from, (audit_dir / fs::path(file.path).filename()).string()});
        } else if (file.role == Role::kAuditActive) {
            plan.placements.push_back({from, settings.audit.path});
        }
    }
    PlanPackAndConfig(dir, manifest, settings, args.config_path, plan);

    std::vector<std::string> moved;
    if (int carried = Carry(plan, Stamp(), moved, err); carried != 0) return carried;
    out << "restored " << args.dir << " (taken " << manifest.created_at << " by " << manifest.user
        << "): store " << settings.store.path << ", audit trail " << settings.audit.path << " ("
        << manifest.trail_records << " records), checkpoint " << checkpoint << "\n";
    for (const std::string& line : moved) out << "moved aside: " << line << "\n";
    if (!plan.notes.empty()) out << plan.notes << "\n";
    // RecordAdminNotes opens the trail, which takes the lock itself.
    return RecordRestore(
        settings, dir, manifest, [&lock] { lock.reset(); }, out, err);
}

}  // namespace microcare::adapter
