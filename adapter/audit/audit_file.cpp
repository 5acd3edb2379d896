#include "adapter/audit/audit_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <utility>

namespace microcare::adapter {
namespace {

class PosixAuditFile final : public AuditFile {
public:
    explicit PosixAuditFile(int fd) : fd_(fd) {}
    ~PosixAuditFile() override { ::close(fd_); }

    Result<void> Append(std::string_view bytes) override {
        while (!bytes.empty()) {
            const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
            if (n < 0) {
                if (errno == EINTR) continue;
                return LastSystemError();
            }
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        if (::fdatasync(fd_) != 0) return LastSystemError();
        return {};
    }

    Result<void> Truncate(std::uint64_t size) override {
        if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return LastSystemError();
        if (::fdatasync(fd_) != 0) return LastSystemError();
        return {};
    }

    Result<std::uint64_t> Size() override {
        struct stat st {};
        if (::fstat(fd_, &st) != 0) return LastSystemError();
        return static_cast<std::uint64_t>(st.st_size);
    }

private:
    int fd_;
};

std::string DirectoryOf(const std::string& path) {
    const auto parent = std::filesystem::path(path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
}

}  // namespace

boost::system::error_code LastSystemError() { return {errno, boost::system::generic_category()}; }

Result<std::unique_ptr<AuditFile>> OpenAuditFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return LastSystemError();
    return std::unique_ptr<AuditFile>(new PosixAuditFile(fd));
}

Result<void> SyncDirectoryOf(const std::string& path) {
    const int fd = ::open(DirectoryOf(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return LastSystemError();
    const int rc = ::fsync(fd);
    auto error = rc != 0 ? LastSystemError() : boost::system::error_code();
    ::close(fd);
    if (error) return error;
    return {};
}

Result<void> ReplaceFileDurably(const std::string& path, std::string_view bytes) {
    const std::string temporary = path + ".tmp";
    const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return LastSystemError();
    PosixAuditFile file(fd);
    if (auto written = file.Append(bytes); !written) {
        ::unlink(temporary.c_str());
        return written.error();
    }
    if (::rename(temporary.c_str(), path.c_str()) != 0) {
        auto error = LastSystemError();
        ::unlink(temporary.c_str());
        return error;
    }
    return SyncDirectoryOf(path);
}

Result<TrailLock> TrailLock::Acquire(const std::string& trail_path) {
    const std::string lock_path = trail_path + ".lock";
    const int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return LastSystemError();
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        auto error = LastSystemError();
        ::close(fd);
        return error;
    }
    return TrailLock(fd);
}

TrailLock::TrailLock(TrailLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

TrailLock& TrailLock::operator=(TrailLock&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

TrailLock::~TrailLock() {
    if (fd_ >= 0) ::close(fd_);
}

}  // namespace microcare::adapter
