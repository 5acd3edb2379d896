#include "adapter/file_io.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace microcare::adapter {
namespace {

std::optional<std::string> Fail(std::string* problem, std::string why) {
    if (problem != nullptr) *problem = std::move(why);
    return std::nullopt;
}

struct Descriptor {
    int fd;
    ~Descriptor() {
        if (fd >= 0) ::close(fd);
    }
};

}  // namespace

std::optional<std::string> ReadFile(const std::string& path, std::string* problem,
                                    std::size_t max_bytes) {
    // O_NONBLOCK: opening a FIFO without a writer would otherwise wait forever. It does not
    // matter for a regular file, the only kind read further.
    Descriptor file{::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)};
    if (file.fd < 0) return Fail(problem, std::strerror(errno));
    struct stat info {};
    if (::fstat(file.fd, &info) != 0) return Fail(problem, std::strerror(errno));
    if (!S_ISREG(info.st_mode)) {
        return Fail(problem, S_ISDIR(info.st_mode) ? "is a directory" : "is not a regular file");
    }
    const auto size = static_cast<std::size_t>(info.st_size);
    if (size > max_bytes) {
        return Fail(problem, "is larger than the limit of " + std::to_string(max_bytes) + " bytes");
    }
    std::string text(size, '\0');
    std::size_t done = 0;
    while (done < size) {
        const ssize_t n = ::read(file.fd, text.data() + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Fail(problem, std::strerror(errno));
        if (n == 0) break;  // the file shrank while being read
        done += static_cast<std::size_t>(n);
    }
    text.resize(done);
    return text;
}

std::shared_ptr<const std::string> MakeScratchDirectory(const std::string& what,
                                                        std::string* problem) {
    const std::filesystem::path parent = std::filesystem::temp_directory_path();
    std::string dir = (parent / ("microcare-" + what + "-XXXXXX")).string();
    if (::mkdtemp(dir.data()) == nullptr) {
        const int error = errno;  // kept for the caller's LastSystemError()
        if (problem != nullptr) *problem = "cannot make a scratch directory in " + parent.string();
        errno = error;
        return nullptr;
    }
    return std::shared_ptr<const std::string>(new std::string(dir), [](const std::string* path) {
        std::error_code ignored;
        std::filesystem::remove_all(*path, ignored);
        delete path;
    });
}

}  // namespace microcare::adapter
