#include "adapter/audit/audit_file_set.hpp"

#include <algorithm>
#include <charconv>
#include <filesystem>

namespace microcare::adapter {
namespace {

constexpr std::size_t kSeqDigits = 12;

// The seq in a rotated file's name, or nullopt when `name` is not `<base>.<12 digits>`.
std::optional<std::uint64_t> RotatedSeq(const std::string& name, const std::string& base) {
    if (name.size() != base.size() + 1 + kSeqDigits || !name.starts_with(base + ".")) {
        return std::nullopt;
    }
    const char* first = name.data() + base.size() + 1;
    const char* last = name.data() + name.size();
    if (!std::all_of(first, last, [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    std::uint64_t seq = 0;
    auto [end, ec] = std::from_chars(first, last, seq);
    if (ec != std::errc() || end != last || seq == 0) return std::nullopt;
    return seq;
}

}  // namespace

std::string FileName(const std::string& path) {
    return std::filesystem::path(path).filename().string();
}

std::string RotatedPath(const std::string& active_path, std::uint64_t first_seq) {
    std::string digits = std::to_string(first_seq);
    if (digits.size() < kSeqDigits) digits.insert(0, kSeqDigits - digits.size(), '0');
    return active_path + "." + digits;
}

std::string CheckpointPathOf(const AuditSettings& settings) {
    return settings.checkpoint_path.empty() ? settings.path + ".checkpoint"
                                            : settings.checkpoint_path;
}

TrailFileSet ListTrailFiles(const std::string& active_path) {
    namespace fs = std::filesystem;
    TrailFileSet set;
    const fs::path active(active_path);
    const std::string base = active.filename().string();
    fs::path dir = active.parent_path();
    if (dir.empty()) dir = ".";
    std::error_code ec;
    std::optional<TrailFile> active_file;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (!name.starts_with(base)) continue;
        if (name == base) {
            active_file = TrailFile{active_path, name, 0, true};
        } else if (auto seq = RotatedSeq(name, base)) {
            set.files.push_back(TrailFile{(dir / name).string(), name, *seq, false});
        } else if (name != base + ".lock" && name != base + ".checkpoint" &&
                   name != base + ".checkpoint.tmp") {
            set.strangers.push_back(name);
        }
    }
    std::sort(set.files.begin(), set.files.end(),
              [](const TrailFile& a, const TrailFile& b) { return a.first_seq < b.first_seq; });
    std::sort(set.strangers.begin(), set.strangers.end());
    if (active_file) set.files.push_back(*active_file);
    return set;
}

}  // namespace microcare::adapter
