#pragma once

#include <string>

#include "rules/pack_identity.hpp"

namespace microcare::adapter {

// The /readyz body: {"status":"ready"|"not ready","rulePack":{"id","version","sha256"}}. The
// status code still carries readiness (200 or 503) for probes that read nothing else; the body
// lets an operator see which pack is in force without reading the start-up log.
std::string ReadinessJson(bool ready, const rules::PackIdentity& pack);

}  // namespace microcare::adapter
