#include "adapter/file_io.hpp"

#include <fstream>
#include <iterator>

namespace microcare::adapter {

std::optional<std::string> ReadFile(const std::string& path, std::size_t max_bytes) {
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in) return std::nullopt;
    auto size = in.tellg();
    if (size < 0 || static_cast<std::size_t>(size) > max_bytes) return std::nullopt;
    std::string text(static_cast<std::size_t>(size), '\0');
    in.seekg(0);
    if (!in.read(text.data(), size)) return std::nullopt;
    return text;
}

}  // namespace microcare::adapter
