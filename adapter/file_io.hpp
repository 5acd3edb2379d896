#pragma once

#include <cstddef>
#include <optional>
#include <string>

namespace microcare::adapter {

// The whole of a regular file, or nullopt with the reason in `problem` (when given): it does
// not exist, cannot be opened, is not a regular file (a FIFO, a device such as /dev/zero, a
// directory: reading those could block or never end), or is larger than `max_bytes`.
std::optional<std::string> ReadFile(const std::string& path, std::string* problem = nullptr,
                                    std::size_t max_bytes = 256 * 1024 * 1024);

}  // namespace microcare::adapter
