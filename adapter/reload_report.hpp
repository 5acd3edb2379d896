#pragma once

#include <string>

#include "adapter/service_config_diff.hpp"
#include "fhir/issues.hpp"
#include "rules/pack_identity.hpp"

namespace microcare::adapter {

// What one reload (SIGHUP or POST /admin/reload) did: put a pack and the live configuration in
// force, or refused them with every problem, the old ones staying in force.
struct ReloadReport {
    enum class Outcome {
        kApplied,    // the pack (and live keys) now in force
        kRefused,    // a file did not validate: `issues` lists why, by JSON path
        kUnaudited,  // valid, but the audit trail could not record it: nothing changed
    };
    Outcome outcome = Outcome::kRefused;
    std::string trigger;  // "SIGHUP" or "admin"
    std::string file;     // the file `issues` are about (the configuration or the pack)
    fhir::IssueList issues;
    rules::PackIdentity pack;      // in force after the reload
    rules::PackIdentity previous;  // in force before it
    ConfigChanges changes;         // applied: live keys now in force, the rest waiting
    bool config_read = false;      // false: the service was started without a config file

    bool applied() const { return outcome == Outcome::kApplied; }
    // The admin endpoint's 200 body and the one-line summaries of the log and the audit.
    std::string Json() const;
    std::string Summary() const;
    // The refusal's OperationOutcome: every problem with its path, then what stays in force.
    fhir::IssueList RefusalIssues() const;
};

}  // namespace microcare::adapter
