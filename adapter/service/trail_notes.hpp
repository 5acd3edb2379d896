#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <functional>

namespace microcare::adapter {

class AuditLog;
class JobStore;
struct Metrics;

// Moves the records committed in the store (each new job's trigger record, what admins did from
// the command line) into the audit trail: at once when nudged after a commit, and every period
// for what another process committed. One writing at a time, so that none is written twice;
// nudges meanwhile make one more. After each writing `written` runs: the worker's wake-up, so
// that a job's trigger record comes before the worker's records of it.
class TrailNotes {
public:
    TrailNotes(boost::asio::any_io_executor executor, boost::asio::thread_pool& blocking,
               JobStore& store, AuditLog& audit, Metrics& metrics, std::function<void()> written);

    // From any thread; never blocks.
    void Nudge();
    // Nudges every `period` until the executor stops.
    boost::asio::awaitable<void> NudgeEvery(std::chrono::seconds period);

private:
    boost::asio::awaitable<void> WriteWhileNudged();

    boost::asio::any_io_executor strand_;  // running_ and again_ live on it
    boost::asio::thread_pool& blocking_;
    JobStore& store_;
    AuditLog& audit_;
    Metrics& metrics_;
    std::function<void()> written_;
    bool running_ = false;
    bool again_ = false;
};

}  // namespace microcare::adapter
