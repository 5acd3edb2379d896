#include "adapter/backup_manifest.hpp"

#include <openssl/evp.h>

#include <array>
#include <fstream>
#include <memory>
#include <string_view>

#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

using Role = BackupFile::Role;

constexpr std::array<std::pair<Role, std::string_view>, 8> kRoles = {{
    {Role::kStore, "store"},
    {Role::kStoreDump, "store-dump"},
    {Role::kAuditCheckpoint, "audit-checkpoint"},
    {Role::kAuditRotated, "audit-rotated"},
    {Role::kAuditActive, "audit-active"},
    {Role::kRulePack, "rule-pack"},
    {Role::kValueSet, "value-set"},
    {Role::kConfig, "config"},
}};

std::string_view RoleName(Role role) {
    for (const auto& [value, name] : kRoles) {
        if (value == role) return name;
    }
    return "?";
}

std::optional<Role> RoleOf(std::string_view name) {
    for (const auto& [value, text] : kRoles) {
        if (text == name) return value;
    }
    return std::nullopt;
}

// The folder of each role; the trail's files, the checkpoint and the configuration directly in
// it, the pack's value sets anywhere below `rules/`.
bool InPlaceOfRole(std::string_view path, Role role) {
    auto directly_in = [path](std::string_view folder) {
        return path.starts_with(folder) && path.size() > folder.size() &&
               path.find('/', folder.size()) == std::string_view::npos;
    };
    switch (role) {
        case Role::kStore:
            return path == "store.db";
        case Role::kStoreDump:
            return path == "store.pgdump";
        case Role::kAuditCheckpoint:
            return directly_in("checkpoint/");
        case Role::kAuditRotated:
        case Role::kAuditActive:
            return directly_in("audit/");
        case Role::kRulePack:
            return directly_in("rules/");
        case Role::kValueSet:
            return path.starts_with("rules/") && path.size() > 6;
        case Role::kConfig:
            return directly_in("config/");
    }
    return false;
}

bool IsSha256Hex(std::string_view text) {
    if (text.size() != 64) return false;
    for (char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace

bool StaysInsideFolder(std::string_view path) {
    if (path.empty() || path.front() == '/') return false;
    std::size_t start = 0;
    while (start <= path.size()) {
        const std::size_t end = std::min(path.find('/', start), path.size());
        const std::string_view part = path.substr(start, end - start);
        if (part.empty() || part == "." || part == "..") return false;
        start = end + 1;
    }
    return path.find('\0') == std::string_view::npos;
}

const BackupFile* BackupManifest::Find(BackupFile::Role role) const {
    for (const BackupFile& file : files) {
        if (file.role == role) return &file;
    }
    return nullptr;
}

std::string ManifestJson(const BackupManifest& manifest) {
    fhir::JsonWriter w(true);
    w.StartObject();
    w.Field("format", "microcare-backup");
    w.Key("formatVersion");
    w.Int(1);
    w.Field("createdAt", manifest.created_at);
    w.Field("microcareVersion", manifest.microcare_version);
    w.Field("user", manifest.user);
    w.Key("trailRecords");
    w.Int(static_cast<long long>(manifest.trail_records));
    w.Field("key", manifest.key_id);
    w.Key("files");
    w.StartArray();
    for (const BackupFile& file : manifest.files) {
        w.StartObject();
        w.Field("path", file.path);
        w.Field("role", RoleName(file.role));
        w.Key("bytes");
        w.Int(static_cast<long long>(file.bytes));
        w.Field("sha256", file.sha256);
        w.EndObject();
    }
    w.EndArray();
    if (!manifest.seal.empty()) w.Field("seal", manifest.seal);
    w.EndObject();
    return w.Take() + "\n";
}

namespace {

// What the seal covers: the manifest as written, without its seal.
std::string SealedBytes(BackupManifest manifest) {
    manifest.seal.clear();
    return ManifestJson(manifest);
}

}  // namespace

void SealManifest(BackupManifest& manifest, const ChainKey& key) {
    manifest.key_id = key.id();
    manifest.seal = key.Seal(SealedBytes(manifest));
}

bool ManifestSealVerifies(const BackupManifest& manifest, const ChainKey& key) {
    return !manifest.seal.empty() && SealsEqual(key.Seal(SealedBytes(manifest)), manifest.seal);
}

std::optional<BackupManifest> ParseManifest(const std::string& json, fhir::IssueList& issues) {
    auto doc = fhir::JsonDocument::Parse(json, issues);
    if (!doc) return std::nullopt;
    const fhir::Node root = doc->Root();
    const std::size_t before = issues.size();
    if (root["format"].String() != "microcare-backup") {
        issues.Error("invalid", "format", "not \"microcare-backup\": not a MicroCare backup");
        return std::nullopt;
    }
    if (root["formatVersion"].NumberText() != "1") {
        issues.Error("not-supported", "formatVersion",
                     "not 1: written by another release, which this one cannot restore");
        return std::nullopt;
    }
    BackupManifest manifest;
    manifest.created_at = std::string(root["createdAt"].String());
    manifest.microcare_version = std::string(root["microcareVersion"].String());
    manifest.user = std::string(root["user"].String());
    manifest.key_id = std::string(root["key"].String());
    manifest.seal = std::string(root["seal"].String());
    if (manifest.seal.empty())
        issues.Error("required", "seal", "missing: the manifest is not sealed");
    if (auto records = fhir::NonNegativeInteger(root["trailRecords"])) {
        manifest.trail_records = static_cast<std::uint64_t>(*records);
    }
    const fhir::Node files = root["files"];
    if (!files.IsArray()) {
        issues.Error("required", "files", "missing: the manifest lists no files");
        return std::nullopt;
    }
    for (std::size_t i = 0; i < files.Size(); ++i) {
        const fhir::Node entry = files[i];
        const std::string at = "files[" + std::to_string(i) + "]";
        BackupFile file;
        file.path = std::string(entry["path"].String());
        if (!StaysInsideFolder(file.path)) {
            issues.Error("invalid", at + ".path",
                         "\"" + file.path + "\" is not a relative path inside the backup");
        }
        const auto role = RoleOf(entry["role"].String());
        if (!role) {
            issues.Error("invalid", at + ".role", "unknown role");
        } else {
            file.role = *role;
            if (!InPlaceOfRole(file.path, file.role)) {
                issues.Error("invalid", at + ".path",
                             "\"" + file.path + "\" is not where a " +
                                 std::string(RoleName(file.role)) + " file goes in a backup");
            }
        }
        const auto bytes = fhir::NonNegativeInteger(entry["bytes"]);
        if (!bytes) {
            issues.Error("invalid", at + ".bytes", "not a non-negative integer");
        } else {
            file.bytes = static_cast<std::uint64_t>(*bytes);
        }
        file.sha256 = std::string(entry["sha256"].String());
        if (!IsSha256Hex(file.sha256)) {
            issues.Error("invalid", at + ".sha256", "not a lower-case hex SHA-256");
        }
        manifest.files.push_back(std::move(file));
    }
    if (manifest.Find(Role::kStore) == nullptr && manifest.Find(Role::kStoreDump) == nullptr) {
        issues.Error("required", "files", "no store or store-dump file: the backup is incomplete");
    }
    // A PostgreSQL store's dump holds its trail; a SQLite store's backup has the trail's files.
    if (manifest.Find(Role::kStore) != nullptr && manifest.Find(Role::kAuditActive) == nullptr) {
        issues.Error("required", "files", "no audit-active file: the backup is incomplete");
    }
    if (issues.size() != before) return std::nullopt;
    return manifest;
}

std::optional<FileDigest> DigestFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return std::nullopt;
    FileDigest digest;
    std::array<char, 64 * 1024> buffer;
    while (in) {
        in.read(buffer.data(), buffer.size());
        const auto got = static_cast<std::size_t>(in.gcount());
        if (got == 0) break;
        if (EVP_DigestUpdate(ctx.get(), buffer.data(), got) != 1) return std::nullopt;
        digest.bytes += got;
    }
    if (in.bad()) return std::nullopt;
    std::array<unsigned char, EVP_MAX_MD_SIZE> md;
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx.get(), md.data(), &length) != 1) return std::nullopt;
    static constexpr char kHex[] = "0123456789abcdef";
    for (unsigned int i = 0; i < length; ++i) {
        digest.sha256 += kHex[md[i] >> 4];
        digest.sha256 += kHex[md[i] & 0xf];
    }
    return digest;
}

}  // namespace microcare::adapter
