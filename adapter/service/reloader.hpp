#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "adapter/audit/audit_log.hpp"
#include "adapter/reload_report.hpp"
#include "adapter/service/rule_pack_in_force.hpp"
#include "adapter/service_config.hpp"

namespace microcare::adapter {

// Rereads the configuration file and the rule pack it names, validates both exactly as
// `microcare config check` and `microcare rules check` do, and puts them in force only when
// both pass: the pack for jobs that start afterwards, the live keys (inbound tokens, log level)
// through `apply_live`. Anything else that changed is reported as needing a restart and keeps
// its old value. A refusal changes nothing. Both outcomes are logged and audited. Blocking
// (files, fsync): call it off the I/O threads. One reload at a time.
class Reloader {
public:
    using ApplyLive = std::function<void(const ServiceConfig&)>;

    // `config_path` empty: the service was built from a struct (tests); only the pack at
    // `running.rules_path` is reread.
    Reloader(std::string config_path, ServiceConfig running, RulePackInForce& pack, AuditLog& audit,
             ApplyLive apply_live);

    ReloadReport Reload(std::string_view trigger);

private:
    std::mutex mutex_;
    std::string config_path_;
    ServiceConfig running_;
    RulePackInForce& pack_;
    AuditLog& audit_;
    ApplyLive apply_live_;
};

}  // namespace microcare::adapter
