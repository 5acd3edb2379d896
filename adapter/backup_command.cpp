#include "adapter/backup_command.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <ostream>
#include <set>
#include <thread>

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
#include "adapter/rule_pack_file.hpp"
#include "adapter/service_config.hpp"
#include "adapter/store/job_store.hpp"
#include "adapter/store/pg_dump.hpp"
#include "adapter/store/sqlite_backup.hpp"
#include "adapter/store/store_location.hpp"
#include "fhir/date_time.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

namespace fs = std::filesystem;
using Role = BackupFile::Role;

// The backup holds patient data (the store's payloads): only its owner reads it.
constexpr unsigned kFileMode = 0600;

// Copies files into the backup folder and lists them for the manifest.
class BackupWriter {
public:
    BackupWriter(fs::path dir, std::ostream& err) : dir_(std::move(dir)), err_(err) {}

    // `relative` inside the folder (its directory is created), then into the manifest. False
    // after saying why.
    bool Copy(const std::string& from, const std::string& relative, Role role, const char* at) {
        auto copied = CopyOnly(from, relative, CopyExtent::kWhole);
        if (!copied) {
            Failed(at, from, copied.error());
            return false;
        }
        return Add(relative, role);
    }

    // The copy alone, replacing an earlier copy of the same name.
    Result<void> CopyOnly(const std::string& from, const std::string& relative, CopyExtent extent) {
        const fs::path to = dir_ / relative;
        std::error_code ec;
        fs::create_directories(to.parent_path(), ec);
        fs::remove(to, ec);
        return CopyRegularFile(from, to.string(), kFileMode, extent);
    }

    void Failed(const char* at, const std::string& from, const boost::system::error_code& error) {
        err_ << at << ": " << from << ": cannot be copied (" << error.message() << ")\n";
    }

    // A file already in the folder, into the manifest.
    bool Add(const std::string& relative, Role role) {
        auto digest = DigestFile((dir_ / relative).string());
        if (!digest) {
            err_ << (dir_ / relative).string() << ": cannot be read back\n";
            return false;
        }
        manifest_.files.push_back({relative, role, digest->bytes, digest->sha256});
        return true;
    }

    // Every file on disk, and the folders that name them, before the manifest says they are.
    bool SyncAll() {
        std::set<std::string> folders{dir_.string()};
        for (const BackupFile& file : manifest_.files) {
            const fs::path path = dir_ / file.path;
            if (!SyncFile(path.string())) {
                err_ << path.string() << ": cannot be synced to disk\n";
                return false;
            }
            folders.insert(path.parent_path().string());
        }
        for (const std::string& folder : folders) {
            if (!SyncFile(folder)) {
                err_ << folder << ": cannot be synced to disk\n";
                return false;
            }
        }
        return true;
    }

    const fs::path& dir() const { return dir_; }
    BackupManifest& manifest() { return manifest_; }

private:
    fs::path dir_;
    std::ostream& err_;
    BackupManifest manifest_;
};

std::vector<std::string> Names(const TrailFileSet& set) {
    std::vector<std::string> names;
    for (const TrailFile& file : set.files) names.push_back(file.name);
    return names;
}

// The checkpoint first, then the trail: the copied trail then reaches at least as far as the
// copied checkpoint, which it would not if the service appended and checkpointed between the
// two. Rotated files never change and are copied once; the active one is taken up to its last
// whole record. Should the service rotate (or retention remove a file) during the copy, the
// names differ afterwards, or the active file is briefly missing, and the active file is taken
// again with the rotated files that appeared meanwhile.
bool CopyTrail(const AuditSettings& audit, BackupWriter& writer, std::ostream& err) {
    const std::string checkpoint = CheckpointPathOf(audit);
    std::error_code ec;
    if (fs::exists(checkpoint, ec)) {
        if (!writer.Copy(checkpoint, "checkpoint/" + FileName(checkpoint), Role::kAuditCheckpoint,
                         "audit.checkpointPath")) {
            return false;
        }
    }
    std::set<std::string> rotated_copied;
    // A rotation takes the service a few fsyncs, during which the active file is missing: the
    // next attempt waits a moment, and the copy gives up only after seconds of rotations.
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (bool first = true; first || std::chrono::steady_clock::now() < give_up; first = false) {
        if (!first) std::this_thread::sleep_for(std::chrono::milliseconds(5));
        const TrailFileSet before = ListTrailFiles(audit.path);
        bool copied = !before.files.empty() && before.files.back().active;
        for (const TrailFile& file : before.files) {
            if (!copied) break;
            if (!file.active && rotated_copied.contains(file.name)) continue;
            auto result =
                writer.CopyOnly(file.path, "audit/" + file.name,
                                file.active ? CopyExtent::kWholeLines : CopyExtent::kWhole);
            if (!result && result.error() != Error::kNotFound) {
                writer.Failed("audit.path", file.path, result.error());
                return false;
            }
            copied = static_cast<bool>(result);  // not found: renamed by a rotation, again
            if (copied && !file.active) rotated_copied.insert(file.name);
        }
        if (!copied || Names(ListTrailFiles(audit.path)) != Names(before)) continue;
        for (const TrailFile& file : before.files) {
            if (!writer.Add("audit/" + file.name,
                            file.active ? Role::kAuditActive : Role::kAuditRotated)) {
                return false;
            }
            rotated_copied.erase(file.name);
        }
        for (const std::string& gone : rotated_copied) {  // removed by retention meanwhile
            fs::remove(writer.dir() / "audit" / gone, ec);
        }
        return true;
    }
    err << "audit.path: " << audit.path
        << (ListTrailFiles(audit.path).files.empty()
                ? ": no audit trail there\n"
                : ": the trail kept rotating during the copy\n");
    return false;
}

// The pack and the value-set files it reads (relative to its folder).
bool CopyRulePack(const std::string& pack, BackupWriter& writer, std::ostream& err) {
    if (!writer.Copy(pack, "rules/" + FileName(pack), Role::kRulePack, "rules.path")) return false;
    fhir::IssueList issues;
    auto text = ReadFile(pack);
    if (!text) return true;  // copied as it is; `rules check` says what is wrong with it
    auto doc = fhir::JsonDocument::Parse(*text, issues);
    if (!doc) return true;
    bool ok = true;
    doc->Root()["valueSets"].ForEachMember([&](std::string_view, fhir::Node value_set) {
        const std::string file(value_set["file"].String());
        if (file.empty() || !ok) return;
        if (!StaysInsideFolder(file)) {
            err << "rules.path: " << pack << ": value set file " << file
                << " is outside the pack's folder; back it up by hand\n";
            return;
        }
        ok = writer.Copy((fs::path(pack).parent_path() / file).string(), "rules/" + file,
                         Role::kValueSet, "rules.path");
    });
    return ok;
}

}  // namespace

int RunBackup(const BackupArgs& args, std::ostream& out, std::ostream& err) {
    auto config = LoadServiceConfig(args.config_path, err);
    if (!config) return 2;
    auto trail = ConfiguredTrail(config->audit);
    if (!trail) {
        err << args.config_path << ": error: audit.keyFile: the key cannot be used\n";
        return 2;
    }
    const fs::path dir(args.dir);
    std::error_code ec;
    if (fs::exists(dir, ec) && !fs::is_empty(dir, ec)) {
        err << args.dir
            << ": exists and is not empty: a backup goes into a new (or empty) folder\n";
        return 2;
    }
    fs::create_directories(dir, ec);
    if (!ec && ::chmod(dir.c_str(), 0700) != 0) ec = {errno, std::generic_category()};
    if (ec) {
        err << args.dir << ": cannot be created (" << ec.message() << ")\n";
        return 2;
    }
    BackupWriter writer(dir, err);

    // The store first: the trail copied after it holds every decision about its jobs. A
    // PostgreSQL store is dumped by PostgreSQL's own tool, in one snapshot.
    if (!config->store.IsFile()) {
        std::string problem;
        if (!DumpPostgresStore(config->store.url, (dir / "store.pgdump").string(), problem)) {
            err << "store.url: " << RedactStoreLocation(config->store.url) << ": cannot be dumped ("
                << problem << ")\n";
            return 1;
        }
        if (!writer.Add("store.pgdump", Role::kStoreDump)) return 1;
    } else if (auto stored = BackupSqliteDatabase(config->store.path, (dir / "store.db").string());
               !stored) {
        err << "store.path: " << config->store.path << ": "
            << (stored.error() == Error::kNotFound
                    ? "no store there"
                    : "cannot be backed up (" + stored.error().message() + ")")
            << "\n";
        return 1;
    } else if (!writer.Add("store.db", Role::kStore)) {
        return 1;
    }
    // A trail in the database is in the dump, of the same snapshot as the jobs.
    if (config->store.IsFile() && !CopyTrail(config->audit, writer, err)) return 1;
    const std::string pack = RulePackPath(config->rules_path);
    if (!CopyRulePack(pack, writer, err)) return 1;
    if (!writer.Copy(args.config_path, "config/" + FileName(args.config_path), Role::kConfig,
                     "--config")) {
        return 1;
    }

    // The copy as restore will check it: with the configured key, against the copied checkpoint
    // (a trail in the database as it stands, since the dump is PostgreSQL's format).
    BackupManifest& manifest = writer.manifest();
    const BackupFile* checkpoint = manifest.Find(Role::kAuditCheckpoint);
    if (config->audit.database.empty()) {
        trail->path = (dir / manifest.Find(Role::kAuditActive)->path).string();
        trail->checkpoint_path = checkpoint ? (dir / checkpoint->path).string() : "";
    } else {
        std::string problem;
        auto copied = CopyTrailFromDatabase(config->audit.database, std::move(*trail), problem);
        if (!copied) {
            err << "store.url: " << problem << " (" << copied.error().message() << ")\n";
            return 1;
        }
        trail = std::move(*copied);
    }
    const AuditReport report = VerifyTrail(*trail);

    manifest.created_at = fhir::FormatInstant(SystemNow(), 0);
    manifest.microcare_version = MICROCARE_VERSION;
    manifest.user = OsUser();
    manifest.trail_records = report.head_seq;
    SealManifest(manifest, trail->keys.empty() ? ChainKey() : trail->keys.front());
    if (!writer.SyncAll()) return 1;
    // Last: a folder without its manifest is a backup that did not finish.
    if (auto written = ReplaceFileDurably((dir / kManifestName).string(), ManifestJson(manifest));
        !written) {
        err << (dir / kManifestName).string() << ": cannot be written ("
            << written.error().message() << ")\n";
        return 1;
    }
    out << "backup in " << args.dir << ": "
        << (config->store.IsFile() ? "store" : "store (pg_dump, custom format)")
        << ", audit trail (" << report.head_seq << " records"
        << (config->audit.database.empty() ? "), " : ", in the dump), ")
        << (checkpoint || !config->audit.database.empty() ? "checkpoint, " : "no checkpoint, ")
        << "rule pack, "
        << "configuration; " << manifest.files.size() << " files in " << kManifestName << "\n";

    // Recorded in the live trail: a note in the live store, which the running service (or this
    // command, when none runs) writes into the trail. After the copy, so the backup's own
    // store does not carry it into a restored trail.
    if (auto store = JobStore::Open(config->store.Location())) {
        AdminNote note;
        note.event = "backup";
        note.fields = {{"user", manifest.user},
                       {"folder", fs::absolute(dir, ec).string()},
                       {"trailRecords", std::to_string(report.head_seq)}};
        if ((*store)->AddAdminNote(std::move(note))) {
            RecordAdminNotes(&config->audit, **store, out);
        } else {
            err << "audit: the backup could not be recorded in the store\n";
        }
        (*store)->Close();
    } else {
        err << "audit: the backup could not be recorded: the store cannot be opened ("
            << store.error().message() << ")\n";
    }

    if (!report.intact()) {
        err << "the copied audit trail does not verify (restore will refuse this backup):\n";
        WriteAuditProblems(*trail, report, err);
        err << "check the live trail: microcare audit verify --config " << args.config_path << "\n";
        return 1;
    }
    return 0;
}

}  // namespace microcare::adapter
