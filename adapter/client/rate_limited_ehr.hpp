#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <mutex>

#include "adapter/client/ehr.hpp"

namespace microcare::adapter {

// An EHR that is asked at most `per_second` times a second: each request waits for its turn,
// the turns evenly spaced, so that a bulk reader (`rules replay`) never floods the clinic's
// EHR. A search counts once however many pages it follows. Thread-safe.
class RateLimitedEhr : public Ehr {
public:
    RateLimitedEhr(Ehr& inner, double per_second);

    boost::asio::awaitable<Result<HttpResponse>> Get(std::string path_or_url) override;
    boost::asio::awaitable<Result<HttpResponse>> Post(std::string path, std::string body) override;
    boost::asio::awaitable<Result<SearchResult>> SearchAll(std::string query) override;

private:
    boost::asio::awaitable<void> Turn();

    Ehr& inner_;
    std::chrono::steady_clock::duration interval_;
    std::mutex mutex_;
    std::chrono::steady_clock::time_point next_{};  // guarded by mutex_
};

}  // namespace microcare::adapter
