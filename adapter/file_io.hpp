#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

namespace microcare::adapter {

// The whole of a regular file, or nullopt with the reason in `problem` (when given): it does
// not exist, cannot be opened, is not a regular file (a FIFO, a device such as /dev/zero, a
// directory: reading those could block or never end), or is larger than `max_bytes`.
std::optional<std::string> ReadFile(const std::string& path, std::string* problem = nullptr,
                                    std::size_t max_bytes = 256 * 1024 * 1024);

// A private folder (mode 0700) in the system's temporary directory, named
// "microcare-<what>-XXXXXX" and removed with its contents when the last holder lets it go; null,
// with errno set and `problem` saying where, when none can be made.
std::shared_ptr<const std::string> MakeScratchDirectory(const std::string& what,
                                                        std::string* problem = nullptr);

}  // namespace microcare::adapter
