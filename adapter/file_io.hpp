#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace microcare::adapter {

// The whole file, or nullopt when it cannot be opened or is larger than `max_bytes`.
std::optional<std::string> ReadFile(const std::string& path,
                                    std::size_t max_bytes = 256 * 1024 * 1024);

}  // namespace microcare::adapter
