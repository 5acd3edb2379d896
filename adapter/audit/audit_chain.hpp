#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "adapter/audit/audit_key.hpp"

namespace microcare::adapter {

// The prev of the first record of a trail.
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

// Events the trail writes about itself, at the start of each file and after a repair.
inline constexpr std::string_view kEventStart = "audit-start";          // a new trail, record 1
inline constexpr std::string_view kEventContinue = "audit-continue";    // a new file of a trail
inline constexpr std::string_view kEventRepair = "audit-repair";        // a torn last line cut
inline constexpr std::string_view kEventRetention = "audit-retention";  // a rotated file removed
inline constexpr std::string_view kEventResumed = "audit-resumed";      // after failed appends
inline constexpr std::string_view kEventNoCheckpoint = "audit-checkpoint-missing";
inline constexpr std::string_view kFormat = "2";
// What a file of the first format (before keys and checkpoints) is sealed with, for messages.
inline constexpr std::string_view kLegacyFormat = "format-1";

// A sealed line (a record, or a checkpoint) is a JSON object whose last member is the seal:
// `{...,"hash":"<64 hex>"}`. The seal covers exactly the bytes before `,"hash"`, so an edit
// anywhere, or a member slipped in after the seal, shows.
//
// `object` is a complete JSON object as the writer made it; returns it sealed (no newline), or
// empty when OpenSSL could not compute the seal.
std::string SealLine(std::string_view object, const ChainKey& key);

struct SealedLine {
    enum class Fault { kNone, kNoSeal, kBytesAfterSeal };
    Fault fault = Fault::kNone;
    std::string_view body;  // what the seal covers
    std::string_view seal;  // 64 lower-case hex digits
};
// Splits a line at its seal, by its exact bytes: the first `,"hash":"` (which can only be the
// member: inside a JSON string a quote is escaped), then 64 hex digits, `"}` and nothing else.
SealedLine SplitSealedLine(std::string_view line);

// One record of the trail, read from a line whose shape is right (the seal is checked apart).
struct AuditRecord {
    std::uint64_t seq = 0;
    std::string ts;
    std::string event;
    std::vector<std::pair<std::string, std::string>> fields;  // the rest, in order
    std::string prev;
    std::string hash;

    // The value of a field, or empty.
    std::string_view Get(std::string_view key) const;
};

// Reads a record: valid UTF-8 JSON, members seq (a positive integer), ts, event, the fields
// (strings), then prev and hash (64 hex digits each), in that order. nullopt and `problem` set
// when it is not one.
std::optional<AuditRecord> ParseRecordLine(const std::string& line, std::string& problem);

}  // namespace microcare::adapter
