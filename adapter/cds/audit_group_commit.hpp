#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>
#include <mutex>
#include <vector>

#include "adapter/audit/audit_log.hpp"
#include "adapter/error.hpp"

namespace microcare::adapter {

// Audit records of many requests made durable together. Each caller resumes only once its own
// record is on disk, as with AuditLog::Append, but one fdatasync covers every record that
// arrived while the previous one ran: advice is a decision and is audited before it is sent,
// and at the rate CDS clients call, one fsync each would be the whole cost of an answer.
class AuditGroupCommit {
public:
    AuditGroupCommit(AuditLog& audit, boost::asio::thread_pool& blocking)
        : audit_(audit), blocking_(blocking) {}

    // Resumes on the caller's executor with the outcome of the batch that held the record.
    boost::asio::awaitable<Result<void>> Append(AuditLog::Record record);

private:
    struct Waiter {
        AuditLog::Record record;
        std::function<void(Result<void>)> done;
    };
    void Enqueue(Waiter waiter);
    void Drain();  // on the blocking pool, while records keep arriving

    AuditLog& audit_;
    boost::asio::thread_pool& blocking_;
    std::mutex mutex_;
    std::vector<Waiter> queue_;
    bool writing_ = false;
};

}  // namespace microcare::adapter
