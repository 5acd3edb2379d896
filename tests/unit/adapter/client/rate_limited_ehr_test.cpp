#include "adapter/client/rate_limited_ehr.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include "tests/unit/adapter/service/in_memory_ehr.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;

// Six requests at 50 a second: the first at once, each next one 20 ms after the one before.
TEST(RateLimitedEhr, RequestsAreSpacedByTheRate) {
    testing::InMemoryEhr inner;
    inner.Put(R"({"resourceType":"Patient","id":"p1"})");
    RateLimitedEhr ehr(inner, 50);
    asio::io_context io;
    const auto start = std::chrono::steady_clock::now();
    auto done = asio::co_spawn(
        io,
        [&]() -> asio::awaitable<int> {
            int ok = 0;
            for (int i = 0; i < 3; ++i) {
                auto read = co_await ehr.Get("Patient/p1");
                ok += read && read->status == 200;
                auto search = co_await ehr.SearchAll("Patient?_id=p1");
                ok += search && search->resources.size() == 1;
            }
            co_return ok;
        },
        asio::use_future);
    io.run();
    EXPECT_EQ(done.get(), 6);
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
    EXPECT_EQ(inner.requests.size(), 6u);
}

}  // namespace
}  // namespace microcare::adapter
