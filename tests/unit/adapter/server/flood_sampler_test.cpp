#include "adapter/server/flood_sampler.hpp"

#include <gtest/gtest.h>

namespace microcare::adapter {
namespace {

using namespace std::chrono_literals;

TEST(FloodSamplerTest, KeepsTheLimitPerWindowAndCarriesTheCountOfTheRest) {
    FloodSampler sampler(2, 60s);
    const auto t0 = FloodSampler::Clock::time_point{} + 1h;
    std::uint64_t skipped = 99;
    EXPECT_TRUE(sampler.Take(t0, skipped));
    EXPECT_EQ(skipped, 0u);
    EXPECT_TRUE(sampler.Take(t0 + 1s, skipped));
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(sampler.Take(t0 + 2s, skipped));
    // A new window: the next record says how many were left out.
    EXPECT_TRUE(sampler.Take(t0 + 61s, skipped));
    EXPECT_EQ(skipped, 5u);
    EXPECT_TRUE(sampler.Take(t0 + 62s, skipped));
    EXPECT_EQ(skipped, 0u);
}

}  // namespace
}  // namespace microcare::adapter
