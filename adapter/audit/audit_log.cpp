#include "adapter/audit/audit_log.hpp"

#include <openssl/evp.h>

#include <chrono>
#include <memory>

#include "fhir/date_time.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

constexpr std::string_view kGenesis =
    "0000000000000000000000000000000000000000000000000000000000000000";

// A record is hashed as written without its own "hash" member, which comes last.
std::string Body(std::string_view line) {
    auto at = line.rfind(",\"hash\":\"");
    return at == std::string_view::npos ? std::string(line) : std::string(line.substr(0, at)) + "}";
}

}  // namespace

std::string Sha256Hex(std::string_view data) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
    static constexpr char kHex[] = "0123456789abcdef";
    std::string hex;
    hex.reserve(length * 2);
    for (unsigned int i = 0; i < length; ++i) {
        hex += kHex[digest[i] >> 4];
        hex += kHex[digest[i] & 0xf];
    }
    return hex;
}

AuditLog::AuditLog(const std::string& path, std::string last_hash, std::uint64_t next_sequence)
    : out_(path, std::ios::app | std::ios::binary),
      last_hash_(std::move(last_hash)),
      next_sequence_(next_sequence) {}

Result<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path) {
    std::string last_hash(kGenesis);
    std::uint64_t records = 0;
    {
        std::ifstream in(path, std::ios::binary);
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            fhir::IssueList issues;
            auto doc = fhir::JsonDocument::Parse(line, issues);
            if (!doc) return Error::kStoreFailed;  // a damaged log is not silently extended
            last_hash = std::string(doc->Root()["hash"].String());
            ++records;
        }
    }
    std::unique_ptr<AuditLog> log(new AuditLog(path, std::move(last_hash), records + 1));
    if (!log->out_) return Error::kStoreFailed;
    return log;
}

void AuditLog::Append(std::string_view event, std::initializer_list<Field> fields) {
    const auto now =
        std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    std::lock_guard lock(mutex_);
    fhir::JsonWriter record;
    record.StartObject();
    record.Key("seq");
    record.Int(static_cast<long long>(next_sequence_));
    record.Field("ts", fhir::FormatInstant(now, 0));
    record.Field("event", event);
    for (const Field& field : fields) record.Field(field.key, field.value);
    record.Field("prev", last_hash_);
    record.EndObject();
    std::string line(record.View());
    const std::string hash = Sha256Hex(line);
    line.pop_back();  // the closing brace: the hash goes last
    line += ",\"hash\":\"" + hash + "\"}\n";
    out_ << line;
    out_.flush();
    last_hash_ = hash;
    ++next_sequence_;
}

Result<AuditLog::Verdict> AuditLog::Verify(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Error::kNotFound;
    Verdict verdict;
    std::string expected_prev(kGenesis);
    std::uint64_t expected_seq = 1;
    std::string line;
    std::size_t number = 0;
    while (std::getline(in, line)) {
        ++number;
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(line, issues);
        auto bad = [&](std::string problem) {
            verdict.first_bad_line = number;
            verdict.problem = std::move(problem);
            return verdict;
        };
        if (!doc) return bad("not a JSON record");
        fhir::Node root = doc->Root();
        if (root["prev"].String() != expected_prev) {
            return bad("its prev does not match the record before it (removed or reordered)");
        }
        if (Sha256Hex(Body(line)) != root["hash"].String()) return bad("its content was changed");
        if (root["seq"].NumberText() != std::to_string(expected_seq)) {
            return bad("its sequence number is out of order");
        }
        expected_prev = std::string(root["hash"].String());
        ++expected_seq;
        ++verdict.records;
    }
    return verdict;
}

}  // namespace microcare::adapter
