#pragma once

#include <iosfwd>
#include <string>

namespace microcare::adapter {

// `microcare status --config FILE`: what an operator asks first, read from the files the
// configuration names (no HTTP, no EHR): the version, the rule pack the configuration names with
// its identity, jobs by state, the oldest waiting job, dead letters, the audit trail's health.
// 0 when all is well, 1 when something needs a look (dead letters, a damaged trail, a pack that
// does not validate), 2 when the configuration or the store cannot be read.
int RunStatus(const std::string& config_path, std::ostream& out, std::ostream& err);

}  // namespace microcare::adapter
