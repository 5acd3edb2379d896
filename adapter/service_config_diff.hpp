#pragma once

#include <string>
#include <vector>

#include "adapter/service_config.hpp"

namespace microcare::adapter {

// What a reload finds changed between the configuration in force and the file as it is now,
// each named by its JSON path (secrets by their key only, never their value).
struct ConfigChanges {
    // Applied at once by a reload: the inbound tokens, the log level, the rule pack's path.
    std::vector<std::string> live;
    // Everything else (sockets, TLS, store, worker, EHR, audit): in force only after a restart.
    std::vector<std::string> restart_needed;
};

ConfigChanges CompareServiceConfigs(const ServiceConfig& running, const ServiceConfig& next);

// `running` with the live keys of `next`: what is in force after a reload.
ServiceConfig WithLiveKeys(ServiceConfig running, const ServiceConfig& next);

}  // namespace microcare::adapter
