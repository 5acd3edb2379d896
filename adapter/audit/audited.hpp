#pragma once

#include <memory>

#include "adapter/async_util.hpp"
#include "adapter/audit/audit_log.hpp"

namespace microcare::adapter {

// Appends one record through the trail's group commit (AuditLog::AppendAsync) and resumes the
// coroutine on its own executor once the record is durable or refused: no thread waits for the
// fdatasync. The record is made (AuditLog::MakeRecord) in a statement of its own before the
// co_await: g++ 12 cannot keep an initializer_list alive across a suspension ("array used as
// initializer"). A plain function, not a coroutine, for the reason Journal gives.
inline auto Audited(AuditLog& audit, AuditLog::Record record) {
    return AwaitCallback<Result<void>>(
        [&audit, shared = std::make_shared<AuditLog::Record>(std::move(record))](auto done) {
            audit.AppendAsync(std::move(*shared), std::move(done));
        });
}

}  // namespace microcare::adapter
