#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/audit/audit_key.hpp"
#include "fhir/issues.hpp"

namespace microcare::adapter {

// What a backup folder holds (`microcare backup`), in `manifest.json`, written last: a folder
// without it is an unfinished backup. Each file with its size and SHA-256, so that restore
// refuses a file that was cut, swapped or edited before it replaces anything.
struct BackupFile {
    enum class Role {
        kStore,            // the job store (SQLite)
        kStoreDump,        // the job store (PostgreSQL), as pg_dump's custom format
        kAuditCheckpoint,  // the trail's checkpoint, copied before the trail
        kAuditRotated,     // a rotated file of the trail
        kAuditActive,      // the trail's active file, up to its last whole record
        kRulePack,         // the pack `rules.path` names
        kValueSet,         // a value-set file the pack reads, relative to the pack's folder
        kConfig,           // the service configuration (restore does not replace it)
    };
    std::string path;  // relative to the backup folder
    Role role = Role::kStore;
    std::uint64_t bytes = 0;
    std::string sha256;
};

struct BackupManifest {
    std::string created_at;  // RFC 3339, when the backup finished
    std::string microcare_version;
    std::string user;                 // the OS user who took it
    std::uint64_t trail_records = 0;  // the last record's seq in the copied trail
    std::vector<BackupFile> files;
    // The manifest sealed with the audit trail's key (HMAC-SHA-256; plain SHA-256 when the trail
    // is unkeyed), so that a file edited together with its line in the manifest is still found:
    // without the key nobody can seal the edit. key_id names the key (ChainKey::id).
    std::string key_id;
    std::string seal;

    // The first file with `role`, or nullptr.
    const BackupFile* Find(BackupFile::Role role) const;
};

inline constexpr const char* kManifestName = "manifest.json";

std::string ManifestJson(const BackupManifest& manifest);

// Sets key_id and seal: the seal covers everything else the manifest says.
void SealManifest(BackupManifest& manifest, const ChainKey& key);
// Whether the seal is right under `key` (compared in constant time).
bool ManifestSealVerifies(const BackupManifest& manifest, const ChainKey& key);

// Reads a manifest; each problem in `issues` with its JSON path (`files[2].path`). File paths
// must stay inside the backup folder (relative, no `..`) and in the place of their role
// (`store.db`, `checkpoint/NAME`, `audit/NAME`, `rules/...`, `config/NAME`): a manifest is
// outside input.
std::optional<BackupManifest> ParseManifest(const std::string& json, fhir::IssueList& issues);

// Relative, without empty, `.` or `..` components: a path that cannot leave the folder it is
// read against.
bool StaysInsideFolder(std::string_view path);

// A regular file's size and lower-case hex SHA-256, read in pieces (a store can be large);
// nullopt when it cannot be read.
struct FileDigest {
    std::uint64_t bytes = 0;
    std::string sha256;
};
std::optional<FileDigest> DigestFile(const std::string& path);

}  // namespace microcare::adapter
