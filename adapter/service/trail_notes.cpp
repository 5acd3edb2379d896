#include "adapter/service/trail_notes.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "adapter/admin_audit.hpp"
#include "adapter/async_util.hpp"
#include "adapter/log.hpp"
#include "adapter/metrics.hpp"

namespace microcare::adapter {

namespace asio = boost::asio;

TrailNotes::TrailNotes(asio::any_io_executor executor, asio::thread_pool& blocking, JobStore& store,
                       AuditLog& audit, Metrics& metrics, std::function<void()> written)
    : strand_(asio::make_strand(std::move(executor))),
      blocking_(blocking),
      store_(store),
      audit_(audit),
      metrics_(metrics),
      written_(std::move(written)) {}

void TrailNotes::Nudge() {
    asio::post(strand_, [this] {
        if (running_) {
            again_ = true;
            return;
        }
        running_ = true;
        asio::co_spawn(
            strand_, WriteWhileNudged(),
            ReportFailure("writing records into the audit trail", metrics_.tasks_failed));
    });
}

asio::awaitable<void> TrailNotes::WriteWhileNudged() {
    do {
        again_ = false;
        auto written =
            co_await Offload(blocking_, [this] { return WriteAdminNotes(store_, audit_); });
        if (!written) {
            // They stay in the store: the next nudge, or the next start, writes them.
            ++metrics_.audit_failures;
            Log::Error("cannot write records into the audit trail yet",
                       {{"error", written.error().message()}});
        }
        written_();
    } while (again_);
    running_ = false;
}

asio::awaitable<void> TrailNotes::NudgeEvery(std::chrono::seconds period) {
    asio::steady_timer timer(co_await asio::this_coro::executor);
    for (;;) {
        timer.expires_after(period);
        auto [ec] = co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;
        Nudge();
    }
}

}  // namespace microcare::adapter
