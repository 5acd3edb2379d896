#pragma once

#include <atomic>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "adapter/log.hpp"

namespace microcare::adapter {

namespace detail {

// Resumes the awaiting coroutine with `value` on its own executor, from any thread.
template <typename R, typename Handler>
void Complete(std::shared_ptr<Handler> handler, R value) {
    auto executor = boost::asio::get_associated_executor(*handler);
    auto result = std::make_shared<std::optional<R>>(std::move(value));
    boost::asio::post(executor,
                      [handler, result]() mutable { std::move (*handler)(std::move(**result)); });
}

}  // namespace detail

// Runs a blocking call (SQLite through the store) on `pool` and resumes the coroutine on its
// own executor with the result: I/O threads never block. Not a coroutine itself: the call is
// moved straight into the operation, never held in a coroutine frame.
template <typename Fn>
auto Offload(boost::asio::thread_pool& pool, Fn fn) {
    using R = std::invoke_result_t<Fn>;
    return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>, void(R)>(
        [&pool](auto handler, Fn call) {
            auto shared = std::make_shared<decltype(handler)>(std::move(handler));
            boost::asio::post(pool, [shared, call = std::move(call)]() mutable {
                detail::Complete<R>(shared, call());
            });
        },
        boost::asio::use_awaitable, std::move(fn));
}

// Adapts a callback-style call (`start(callback)`, the callback invoked on any thread) into an
// awaitable resumed on the coroutine's executor.
template <typename R, typename Start>
auto AwaitCallback(Start start) {
    return boost::asio::async_initiate<const boost::asio::use_awaitable_t<>, void(R)>(
        [](auto handler, Start begin) {
            auto shared = std::make_shared<decltype(handler)>(std::move(handler));
            begin([shared](R value) { detail::Complete<R>(shared, std::move(value)); });
        },
        boost::asio::use_awaitable, std::move(start));
}

// In place of asio::detached for co_spawn: a spawned coroutine that ends with an exception is
// logged with `task` and counted in `failures`, never dropped in silence.
inline auto ReportFailure(std::string_view task, std::atomic<std::uint64_t>& failures) {
    return [task = std::string(task), &failures](std::exception_ptr error) {
        if (!error) return;
        ++failures;
        std::string what = "an exception that is no std::exception";
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
        }
        Log::Error("a background task failed", {{"task", task}, {"error", what}});
    };
}

}  // namespace microcare::adapter
