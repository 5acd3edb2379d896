#pragma once

#include <memory>
#include <string>

#include "adapter/audit/audit_log.hpp"
#include "adapter/audit/audit_verify.hpp"

namespace microcare::adapter {

// The trail a configuration names: its files, or the PostgreSQL store's database
// (settings.database), which every replica and command appends to as one chain.
Result<std::unique_ptr<AuditLog>> OpenConfiguredTrail(const AuditSettings& settings,
                                                      AuditLog::Options options = {},
                                                      std::string* problem = nullptr);

// A trail in the database as the audit commands read a trail: its lines and its checkpoint
// copied, as they are, into a private scratch directory (removed with the last copy of the
// result), so that one verifier and one query serve both kinds. `trail` brings the keys.
Result<TrailToVerify> CopyTrailFromDatabase(const std::string& url, TrailToVerify trail,
                                            std::string& problem);

}  // namespace microcare::adapter
