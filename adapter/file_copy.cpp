#include "adapter/file_copy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace microcare::adapter {
namespace {

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    int get() const { return fd_; }

private:
    int fd_;
};

boost::system::error_code Errno() { return {errno, boost::system::system_category()}; }

bool WriteAll(int fd, const char* data, std::size_t size) {
    while (size > 0) {
        const ssize_t wrote = ::write(fd, data, size);
        if (wrote < 0 && errno == EINTR) continue;
        if (wrote <= 0) return false;
        data += wrote;
        size -= static_cast<std::size_t>(wrote);
    }
    return true;
}

}  // namespace

Result<void> CopyRegularFile(const std::string& from, const std::string& to, unsigned mode,
                             CopyExtent extent) {
    Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (in.get() < 0) return errno == ENOENT ? Result<void>(Error::kNotFound) : Errno();
    struct stat info {};
    if (::fstat(in.get(), &info) != 0) return Errno();
    // A FIFO or a device could block or never end.
    if (!S_ISREG(info.st_mode))
        return boost::system::error_code(EINVAL, boost::system::system_category());
    Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
    if (out.get() < 0) return Errno();
    std::array<char, 64 * 1024> buffer;
    off_t copied = 0;
    off_t after_last_newline = 0;
    for (;;) {
        const ssize_t got = ::read(in.get(), buffer.data(), buffer.size());
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return Errno();
        if (got == 0) break;
        if (!WriteAll(out.get(), buffer.data(), static_cast<std::size_t>(got))) return Errno();
        for (ssize_t i = got; i > 0; --i) {
            if (buffer[static_cast<std::size_t>(i - 1)] == '\n') {
                after_last_newline = copied + i;
                break;
            }
        }
        copied += got;
    }
    if (extent == CopyExtent::kWholeLines && after_last_newline != copied &&
        ::ftruncate(out.get(), after_last_newline) != 0) {
        return Errno();
    }
    return {};
}

Result<void> SyncFile(const std::string& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return Errno();
    if (::fsync(fd.get()) != 0) return Errno();
    return {};
}

}  // namespace microcare::adapter
