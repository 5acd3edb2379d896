#include "adapter/client/rate_limited_ehr.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace microcare::adapter {

namespace asio = boost::asio;

RateLimitedEhr::RateLimitedEhr(Ehr& inner, double per_second)
    : inner_(inner),
      interval_(std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double>(1.0 / std::max(per_second, 1e-3)))) {}

asio::awaitable<void> RateLimitedEhr::Turn() {
    const auto now = std::chrono::steady_clock::now();
    std::chrono::steady_clock::time_point turn;
    {
        std::lock_guard lock(mutex_);
        turn = std::max(now, next_);
        next_ = turn + interval_;
    }
    if (turn <= now) co_return;
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_at(turn);
    co_await timer.async_wait(asio::use_awaitable);
}

asio::awaitable<Result<HttpResponse>> RateLimitedEhr::Get(std::string path_or_url) {
    co_await Turn();
    co_return co_await inner_.Get(std::move(path_or_url));
}

asio::awaitable<Result<HttpResponse>> RateLimitedEhr::Post(std::string path, std::string body) {
    co_await Turn();
    co_return co_await inner_.Post(std::move(path), std::move(body));
}

asio::awaitable<Result<SearchResult>> RateLimitedEhr::SearchAll(std::string query) {
    co_await Turn();
    co_return co_await inner_.SearchAll(std::move(query));
}

}  // namespace microcare::adapter
