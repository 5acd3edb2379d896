#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>

namespace microcare::adapter {

// `microcare serve --config FILE`: runs until SIGTERM/SIGINT. 0 after a clean stop, 2 when
// the configuration is refused, 1 when the service cannot start.
int RunServe(const std::string& config_path, std::ostream& err);

// `microcare config check FILE`
int RunConfigCheck(const std::string& config_path, std::ostream& out, std::ostream& err);

// `microcare jobs list|show|retry`: the store is named by --store, or by the configuration.
struct JobsArgs {
    std::string config_path;
    std::string store_path;
    std::optional<std::string> state;  // list: queued | running | done | dead
    std::size_t limit = 50;
    std::int64_t id = 0;  // show, retry
};
int RunJobsList(const JobsArgs& args, std::ostream& out, std::ostream& err);
int RunJobsShow(const JobsArgs& args, std::ostream& out, std::ostream& err);
int RunJobsRetry(const JobsArgs& args, std::ostream& out, std::ostream& err);

}  // namespace microcare::adapter
