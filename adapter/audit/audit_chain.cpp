#include "adapter/audit/audit_chain.hpp"

#include <charconv>

#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

constexpr std::string_view kSealMember = ",\"hash\":\"";
constexpr std::size_t kSealDigits = 64;

bool IsSealText(std::string_view text) {
    if (text.size() != kSealDigits) return false;
    for (char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

}  // namespace

std::string SealLine(std::string_view object, const ChainKey& key) {
    if (object.empty() || object.back() != '}') return {};
    const std::string_view body = object.substr(0, object.size() - 1);
    const std::string seal = key.Seal(body);
    if (seal.size() != kSealDigits) return {};
    std::string line;
    line.reserve(body.size() + kSealMember.size() + kSealDigits + 2);
    line.append(body).append(kSealMember).append(seal).append("\"}");
    return line;
}

SealedLine SplitSealedLine(std::string_view line) {
    SealedLine out;
    const auto at = line.find(kSealMember);
    if (at == std::string_view::npos) {
        out.fault = SealedLine::Fault::kNoSeal;
        return out;
    }
    const std::string_view rest = line.substr(at + kSealMember.size());
    if (rest.size() < kSealDigits + 2 || !IsSealText(rest.substr(0, kSealDigits)) ||
        rest[kSealDigits] != '"') {
        out.fault = SealedLine::Fault::kNoSeal;
        return out;
    }
    if (rest.substr(kSealDigits + 1) != "}") {
        out.fault = SealedLine::Fault::kBytesAfterSeal;
        return out;
    }
    out.body = line.substr(0, at);
    out.seal = rest.substr(0, kSealDigits);
    return out;
}

std::string_view AuditRecord::Get(std::string_view key) const {
    for (const auto& [name, value] : fields) {
        if (name == key) return value;
    }
    return {};
}

std::optional<AuditRecord> ParseRecordLine(const std::string& line, std::string& problem) {
    fhir::IssueList issues;
    auto doc = fhir::JsonDocument::Parse(line, issues);
    if (!doc) {
        problem = "not valid JSON";
        if (issues.size() > 0) problem += " (" + issues.issues()[0].message + ")";
        return std::nullopt;
    }
    const fhir::Node root = doc->Root();
    const std::size_t n = root.Size();
    if (!root.IsObject() || n < 5) {
        problem = "not an audit record (an object with seq, ts, event, prev and hash)";
        return std::nullopt;
    }
    auto expect = [&](std::size_t index, std::string_view name) {
        return root.MemberName(index) == name;
    };
    if (!expect(0, "seq") || !expect(1, "ts") || !expect(2, "event") || !expect(n - 2, "prev") ||
        !expect(n - 1, "hash")) {
        problem = "not an audit record: its members are not seq, ts, event, ..., prev, hash";
        return std::nullopt;
    }
    AuditRecord record;
    const std::string_view seq = root.Member(0).NumberText();
    const auto [end, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), record.seq);
    if (seq.empty() || ec != std::errc() || end != seq.data() + seq.size() || record.seq == 0) {
        problem = "its seq is not a positive whole number";
        return std::nullopt;
    }
    for (std::size_t i = 1; i < n; ++i) {
        if (!root.Member(i).IsString()) {
            problem = "its member " + std::string(root.MemberName(i)) + " is not a string";
            return std::nullopt;
        }
    }
    record.ts = root.Member(1).String();
    record.event = root.Member(2).String();
    for (std::size_t i = 3; i + 2 < n; ++i) {
        record.fields.emplace_back(root.MemberName(i), root.Member(i).String());
    }
    record.prev = root.Member(n - 2).String();
    record.hash = root.Member(n - 1).String();
    if (!IsSealText(record.prev) || !IsSealText(record.hash)) {
        problem = "its prev or hash is not 64 hex digits";
        return std::nullopt;
    }
    return record;
}

}  // namespace microcare::adapter
