#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "adapter/error.hpp"

namespace microcare::adapter {

// The file the trail appends to: a seam, so that a test can make writes fail as a full disk
// does (ENOSPC) without filling one.
class AuditFile {
public:
    virtual ~AuditFile() = default;
    // Writes all of `bytes` at the end of the file and makes them durable (fdatasync) before
    // returning. On an error part of them may have been written: the caller cuts them off.
    virtual Result<void> Append(std::string_view bytes) = 0;
    // Cuts the file back to `size` bytes, durably.
    virtual Result<void> Truncate(std::uint64_t size) = 0;
    virtual Result<std::uint64_t> Size() = 0;
};

// Opens (creating it, mode 0640) a file for appending.
using AuditFileOpener = std::function<Result<std::unique_ptr<AuditFile>>(const std::string&)>;
Result<std::unique_ptr<AuditFile>> OpenAuditFile(const std::string& path);

// fsync of the directory holding `path`, so that a created, renamed or removed file stays so
// after a crash.
Result<void> SyncDirectoryOf(const std::string& path);

// Replaces `path` with `bytes` so that a crash leaves the old or the new content, never a mix:
// a temporary file, fsync, rename, fsync of the directory.
Result<void> ReplaceFileDurably(const std::string& path, std::string_view bytes);

// An exclusive lock (flock) on `<path>.lock`, held while the object lives: two processes
// appending to one trail would fork its chain.
class TrailLock {
public:
    static Result<TrailLock> Acquire(const std::string& trail_path);
    TrailLock(TrailLock&& other) noexcept;
    TrailLock& operator=(TrailLock&& other) noexcept;
    TrailLock(const TrailLock&) = delete;
    TrailLock& operator=(const TrailLock&) = delete;
    ~TrailLock();

private:
    explicit TrailLock(int fd) : fd_(fd) {}
    int fd_ = -1;
};

// An error code from errno.
boost::system::error_code LastSystemError();

}  // namespace microcare::adapter
