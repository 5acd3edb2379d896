#pragma once

// The audit trail's file writer failing as a full disk does, for the trail's own tests and the
// service's: switched on and off while the trail is open.

#include <atomic>
#include <memory>
#include <string>
#include <string_view>

#include "adapter/audit/audit_file.hpp"

namespace microcare::adapter::testing {

// The file writer, failing as a full disk does: part of the bytes written, then ENOSPC.
class FullDisk final : public AuditFile {
public:
    FullDisk(std::unique_ptr<AuditFile> file, std::shared_ptr<std::atomic<bool>> full,
             std::shared_ptr<std::atomic<bool>> truncate_fails)
        : file_(std::move(file)),
          full_(std::move(full)),
          truncate_fails_(std::move(truncate_fails)) {}

    Result<void> Append(std::string_view bytes) override {
        if (*full_) {
            (void)file_->Append(bytes.substr(0, bytes.size() / 2));
            return make_error_code(boost::system::errc::no_space_on_device);
        }
        return file_->Append(bytes);
    }
    Result<void> Truncate(std::uint64_t size) override {
        if (*truncate_fails_) return make_error_code(boost::system::errc::io_error);
        return file_->Truncate(size);
    }
    Result<std::uint64_t> Size() override { return file_->Size(); }

private:
    std::unique_ptr<AuditFile> file_;
    std::shared_ptr<std::atomic<bool>> full_;
    std::shared_ptr<std::atomic<bool>> truncate_fails_;
};

// Opens the real file, wrapped: while `*full`, appends write half their bytes and fail with
// ENOSPC; while `*truncate_fails`, cutting back fails too.
inline AuditFileOpener FullDiskOpener(std::shared_ptr<std::atomic<bool>> full,
                                      std::shared_ptr<std::atomic<bool>> truncate_fails =
                                          std::make_shared<std::atomic<bool>>(false)) {
    return [full = std::move(full), truncate_fails = std::move(truncate_fails)](
               const std::string& path) -> Result<std::unique_ptr<AuditFile>> {
        auto file = OpenAuditFile(path);
        if (!file) return file.error();
        return std::unique_ptr<AuditFile>(new FullDisk(std::move(*file), full, truncate_fails));
    };
}

}  // namespace microcare::adapter::testing
