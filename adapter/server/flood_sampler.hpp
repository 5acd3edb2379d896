#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>

namespace microcare::adapter {

// Events that may come in floods (refused credentials in the audit trail, failing accept()s or
// scanners' handshakes in the log): at most `limit` per `window` are let through, the rest only
// counted, and the count carried by the next one let through. The flood is then visible without
// filling the disk or drowning what is around it.
class FloodSampler {
public:
    using Clock = std::chrono::steady_clock;

    FloodSampler(std::size_t limit, Clock::duration window) : limit_(limit), window_(window) {}

    // True: let this one through, saying that `skipped` were left out before it. Thread-safe.
    bool Take(Clock::time_point now, std::uint64_t& skipped) {
        std::lock_guard lock(mutex_);
        if (now - window_start_ >= window_) {
            window_start_ = now;
            taken_ = 0;
        }
        if (taken_ >= limit_) {
            ++skipped_;
            return false;
        }
        ++taken_;
        skipped = skipped_;
        skipped_ = 0;
        return true;
    }

private:
    const std::size_t limit_;
    const Clock::duration window_;
    std::mutex mutex_;
    Clock::time_point window_start_{};
    std::size_t taken_ = 0;
    std::uint64_t skipped_ = 0;
};

}  // namespace microcare::adapter
