#pragma once

#include <iosfwd>
#include <string>

namespace microcare::adapter {

// `microcare serve --config FILE`: runs until SIGTERM/SIGINT. 0 after a clean stop, 2 when
// the configuration is refused, 1 when the service cannot start.
int RunServe(const std::string& config_path, std::ostream& err);

// `microcare config check FILE` (or `--config FILE`): what `serve` would refuse, each problem
// with its JSON path, exit 2. With `connect`, once those checks pass, the EHR is reached as
// `serve` reaches it (ehr_probe.hpp): TLS, the SMART token, [base]/metadata.
int RunConfigCheck(const std::string& config_path, std::ostream& out, std::ostream& err,
                   bool connect = false);

}  // namespace microcare::adapter
