#include "adapter/audit/audit_checkpoint.hpp"

#include <charconv>
#include <filesystem>

#include "adapter/audit/audit_chain.hpp"
#include "adapter/audit/audit_file.hpp"
#include "adapter/file_io.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {

std::string SealCheckpoint(const AuditCheckpoint& checkpoint, const ChainKey& key) {
    fhir::JsonWriter w;
    w.StartObject();
    w.Field("format", kFormat);
    w.Field("records", std::to_string(checkpoint.records));
    w.Field("lastHash", checkpoint.last_hash);
    w.Field("file", checkpoint.file);
    w.Field("time", checkpoint.time);
    w.Field("key", key.id());
    w.EndObject();
    return SealLine(w.View(), key);
}

Result<void> WriteCheckpoint(const std::string& path, const AuditCheckpoint& checkpoint,
                             const ChainKey& key) {
    const std::string line = SealCheckpoint(checkpoint, key);
    if (line.empty()) return Error::kAuditFailed;
    return ReplaceFileDurably(path, line + "\n");
}

CheckpointRead ReadCheckpoint(const std::string& path, const std::vector<ChainKey>& keys) {
    CheckpointRead read;
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        read.missing = true;
        read.problem = "there is no checkpoint " + path;
        return read;
    }
    std::string why;
    auto text = ReadFile(path, &why, 64 * 1024);
    if (!text) {
        read.problem = "the checkpoint " + path + " cannot be read: " + why;
        return read;
    }
    std::string line = std::move(*text);
    if (!line.empty() && line.back() == '\n') line.pop_back();
    return ReadCheckpointLine(std::move(line), path, keys);
}

CheckpointRead ReadCheckpointLine(std::string line, const std::string& where,
                                  const std::vector<ChainKey>& keys) {
    CheckpointRead read;
    const SealedLine sealed = SplitSealedLine(line);
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(line, issues);
    if (sealed.fault != SealedLine::Fault::kNone || !doc || !doc->Root().IsObject()) {
        read.problem = "the checkpoint " + where + " is not a sealed checkpoint";
        return read;
    }
    const fhir::Node root = doc->Root();
    AuditCheckpoint c;
    c.last_hash = root["lastHash"].String();
    c.file = root["file"].String();
    c.time = root["time"].String();
    c.key_id = root["key"].String();
    const std::string_view records = root["records"].String();
    auto [end, parse_error] =
        std::from_chars(records.data(), records.data() + records.size(), c.records);
    if (records.empty() || parse_error != std::errc() || end != records.data() + records.size()) {
        read.problem = "the checkpoint " + where + " has no record count";
        return read;
    }
    const ChainKey* key = nullptr;
    static const ChainKey kUnkeyed;
    if (c.key_id == kUnkeyed.id()) {
        if (!keys.empty()) {
            read.problem = "the checkpoint " + where +
                           " is not sealed with the trail's key: forged, or written before "
                           "the key was configured";
            return read;
        }
        key = &kUnkeyed;
    }
    for (const ChainKey& candidate : keys) {
        if (candidate.id() == c.key_id) key = &candidate;
    }
    if (key == nullptr) {
        read.other_key = true;
        read.problem =
            "the checkpoint " + where + " is sealed with key " + c.key_id + ", which was not given";
        return read;
    }
    if (!SealsEqual(key->Seal(sealed.body), sealed.seal)) {
        read.problem = "the checkpoint " + where + " does not match its seal: edited or forged";
        return read;
    }
    read.checkpoint = std::move(c);
    return read;
}

}  // namespace microcare::adapter
