// The idle-connection pool on its own: last in, first out, a cap per key, keys kept apart, and
// connections the server has closed never handed out.
#include "adapter/client/connection_pool.hpp"

#include <gtest/gtest.h>

#include <boost/asio/use_awaitable.hpp>

#include "test_server.hpp"

namespace microcare::adapter::detail {
namespace {

namespace asio = boost::asio;
using test_support::Reply;
using test_support::RunToEnd;
using test_support::TestServer;

struct Observed {
    bool lifo = false;
    bool drained = false;
    bool capped = false;
    bool keys_apart = false;
    bool closed_dropped = false;
};

asio::awaitable<Result<std::unique_ptr<Connection>>> Open(asio::io_context& io,
                                                          const Endpoint& endpoint) {
    co_return co_await Connection::Open(io.get_executor(), nullptr, endpoint,
                                        std::chrono::seconds(10));
}

TEST(ConnectionPool, LastInFirstOutWithACapPerKey) {
    asio::io_context io;
    TestServer server(io, [](const test_support::ReceivedRequest&) {
        return Reply::Do(Reply::Action::kRespondThenClose);
    });
    Endpoint endpoint{false, "127.0.0.1", server.port(), "127.0.0.1", "/"};
    const std::string key = endpoint.PoolKey();

    auto body = [&]() -> asio::awaitable<Observed> {
        Observed observed;
        auto a = co_await Open(io, endpoint);
        auto b = co_await Open(io, endpoint);
        if (!a || !b) co_return observed;
        Connection* first = a->get();
        Connection* second = b->get();

        ConnectionPool pool(2);
        pool.Release(key, std::move(*a));
        pool.Release(key, std::move(*b));
        auto x = pool.Acquire(key);
        auto y = pool.Acquire(key);
        observed.lifo = x.get() == second && y.get() == first;
        observed.drained = pool.Acquire(key) == nullptr && pool.IdleCount(key) == 0;

        ConnectionPool small(1);
        small.Release(key, std::move(x));
        small.Release(key, std::move(y));
        observed.capped = small.IdleCount(key) == 1;
        observed.keys_apart = small.Acquire("http://127.0.0.1:1") == nullptr;
        auto kept = small.Acquire(key);

        // A request on the kept connection makes the server close it after answering.
        HttpRequest request;
        request.url = "http://127.0.0.1/";
        HttpClientOptions options;
        auto outcome = co_await kept->Exchange(request, endpoint, options);
        co_await server.WaitForClosedConnections(2);
        small.Release(key, std::move(kept));
        observed.closed_dropped = outcome.response.has_value() && small.Acquire(key) == nullptr;
        co_return observed;
    };
    auto observed = RunToEnd(io, {&server}, body());

    EXPECT_TRUE(observed.lifo);
    EXPECT_TRUE(observed.drained);
    EXPECT_TRUE(observed.capped);
    EXPECT_TRUE(observed.keys_apart);
    EXPECT_TRUE(observed.closed_dropped);
}

}  // namespace
}  // namespace microcare::adapter::detail
