#pragma once

#include <optional>
#include <string>

#include "adapter/client/ehr_health.hpp"
#include "adapter/poll/poll_health.hpp"
#include "rules/pack_identity.hpp"

namespace microcare::adapter {

// What /readyz answers. Ready means the service can take triggers (it is running and its audit
// trail can be written: a trigger that cannot be audited is refused). An EHR that
// cannot be reached does not make it unready, since triggers are journaled and written back
// once the EHR returns: the service is then "degraded", still 200, so that a load balancer
// keeps sending triggers while an operator sees the outage.
struct Readiness {
    bool ready = false;
    EhrHealth::Reading ehr;
    bool audit_trail_writable = true;  // false: triggers are refused (not ready)
    // Set when the service polls the EHR (adapter/poll/): a failing poll degrades, as an
    // unreachable EHR does, since the other channels still take triggers.
    std::optional<PollHealth::Reading> poll = std::nullopt;

    bool degraded() const { return !ehr.up() || (poll && poll->failing()); }

    unsigned HttpStatus() const { return ready ? 200u : 503u; }
};

// The /readyz body: {"status":"ready"|"degraded"|"not ready","rulePack":{"id","version",
// "sha256"},"auditTrail":"writable"|"failing","ehr":"reachable"|"unreachable"|"unknown",
// "ehrLastSuccess":"<instant>"}, the last
// only once an exchange with the EHR has succeeded; with polling also "poll":"ok"|"failing"
// and "pollLastSuccess". The status code still carries readiness
// for probes that read nothing else; the body lets an operator see which pack is in force and
// since when the EHR has not answered, without reading the log.
std::string ReadinessJson(const Readiness& readiness, const rules::PackIdentity& pack);

}  // namespace microcare::adapter
