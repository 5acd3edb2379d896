#include "adapter/configured_trail.hpp"

#include <fstream>

#include "adapter/file_io.hpp"
#include "adapter/store/pg_audit_table.hpp"

namespace microcare::adapter {

Result<std::unique_ptr<AuditLog>> OpenConfiguredTrail(const AuditSettings& settings,
                                                      AuditLog::Options options,
                                                      std::string* problem) {
    if (!settings.database.empty()) {
        auto table = PgAuditTable::Open(settings.database);
        if (!table) {
            if (problem != nullptr) *problem = "cannot connect to the store's database";
            return table.error();
        }
        options.table = std::move(*table);
    }
    return AuditLog::Open(settings, std::move(options), problem);
}

Result<TrailToVerify> CopyTrailFromDatabase(const std::string& url, TrailToVerify trail,
                                            std::string& problem) {
    auto table = PgAuditTable::Open(url);
    if (!table) {
        problem = "cannot connect to the store's database";
        return table.error();
    }
    auto stored = (*table)->ReadHead();
    if (!stored) {
        problem = "the store's database holds no audit trail (is its schema migrated?)";
        return stored.error();
    }
    auto scratch = MakeScratchDirectory("audit", &problem);
    if (!scratch) return LastSystemError();
    const std::string dir = *scratch;
    trail.keep = std::move(scratch);
    // Named after the table, so that a finding reads `audit_records:12: edited`.
    trail.path = dir + "/audit_records";
    trail.checkpoint_path.clear();
    trail.shown_as = "the store's database";
    std::ofstream lines(trail.path, std::ios::binary);
    auto read = (*table)->ReadLines([&lines](std::string_view line) {
        lines.write(line.data(), static_cast<std::streamsize>(line.size())).put('\n');
    });
    lines.close();
    if (!read || !lines) {
        problem = "cannot copy the audit trail out of the database";
        return read ? Result<TrailToVerify>(Error::kAuditFailed) : read.error();
    }
    if (!stored->checkpoint.empty()) {
        trail.checkpoint_path = dir + "/audit_head.checkpoint";
        std::ofstream checkpoint(trail.checkpoint_path, std::ios::binary);
        checkpoint << stored->checkpoint << '\n';
        if (!checkpoint) {
            problem = "cannot copy the audit checkpoint out of the database";
            return Error::kAuditFailed;
        }
    }
    return trail;
}

}  // namespace microcare::adapter
