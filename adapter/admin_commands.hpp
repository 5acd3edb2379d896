#pragma once

#include <iosfwd>
#include <string>

namespace microcare::adapter {

// `microcare serve --config FILE`: runs until SIGTERM/SIGINT. 0 after a clean stop, 2 when
// the configuration is refused, 1 when the service cannot start.
int RunServe(const std::string& config_path, std::ostream& err);

// `microcare config check FILE`
int RunConfigCheck(const std::string& config_path, std::ostream& out, std::ostream& err);

}  // namespace microcare::adapter
