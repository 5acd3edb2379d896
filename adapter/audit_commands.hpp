#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "adapter/audit/audit_verify.hpp"

namespace microcare::adapter {

// `microcare audit verify|show|export`: the trail is named by --config (the service
// configuration: the trail, its key and its checkpoint) or as FILE (with --key-file and
// --checkpoint when it has them).
struct AuditArgs {
    std::string config_path;
    std::string file;
    std::vector<std::string> key_files;  // older keys too: each file is checked with its own
    std::string checkpoint_path;         // with FILE; default `FILE.checkpoint` when it exists
    std::string format;                  // verify: text | json; show: table | json
    // show and export
    std::string patient;
    std::string encounter;
    std::string rule;
    std::string since;
    std::string until;
    std::uint64_t after = 0;  // export: only records after this seq
};

// Each problem of a verified trail as `file:line: kind: what`, one a line.
void WriteAuditProblems(const TrailToVerify& trail, const AuditReport& report, std::ostream& err);

// 0 when every file, every seal, the chain and the checkpoint are intact; 2 when something is
// wrong (each problem with its file, line and kind) or the input is bad.
// The trail that `args` names (--config, or FILE with --key-file and --checkpoint), or nothing
// with the reason on `err`. `audit verify` and `status` both read it this way.
std::optional<TrailToVerify> ResolveTrail(const AuditArgs& args, std::ostream& err);

int RunAuditVerify(const AuditArgs& args, std::ostream& out, std::ostream& err);

// The records that answer the question, with the rest of their jobs: a table or JSON.
int RunAuditShow(const AuditArgs& args, std::ostream& out, std::ostream& err);

// The sealed records as JSON lines, for a SIEM; 2 (after writing them) when the trail is not
// intact.
int RunAuditExport(const AuditArgs& args, std::ostream& out, std::ostream& err);

}  // namespace microcare::adapter
