#pragma once

#include <iosfwd>
#include <optional>
#include <string>

namespace microcare::adapter {

struct EvaluateArgs {
    std::string record_path;
    std::string rules_path;  // empty: the default pack
    std::optional<std::string> now;
    std::optional<std::string> encounter;
    bool compact = false;
};

// `microcare evaluate`: prints the transaction Bundle to `out` and a summary to `err`.
// Returns 0 when it evaluated (also when nothing applied), 2 on bad input.
int RunEvaluate(const EvaluateArgs& args, std::ostream& out, std::ostream& err);

// `microcare rules check FILE`: 0 when the pack is valid, 2 with every problem otherwise.
int RunRulesCheck(const std::string& path, std::ostream& out, std::ostream& err);

}  // namespace microcare::adapter
