// /metrics is what an admin alerts on: every metric it serves must be documented in
// deploy/OPERATIONS.md, and the live readings (queue, pack, HTTP edge) must reach the page.
#include "adapter/metrics.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

namespace microcare::adapter {
namespace {

std::string Operations() {
    std::ifstream in(std::string(MICROCARE_SOURCE_DIR) + "/deploy/OPERATIONS.md");
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

TEST(Metrics, EveryMetricServedIsDocumentedInOperations) {
    const std::string page = Metrics{}.Prometheus({});
    const std::string docs = Operations();
    ASSERT_FALSE(docs.empty());
    std::istringstream lines(page);
    int checked = 0;
    for (std::string line; std::getline(lines, line);) {
        if (!line.starts_with("# TYPE ")) continue;
        const std::string name = line.substr(7, line.find(' ', 7) - 7);
        EXPECT_NE(docs.find("`" + name), std::string::npos)
            << name << " is served at /metrics but not documented in deploy/OPERATIONS.md";
        ++checked;
    }
    EXPECT_GE(checked, 20);
}

TEST(Metrics, LiveReadingsReachThePage) {
    Metrics metrics;
    metrics.jobs_dead = 2;
    LiveReadings live;
    live.queued = 7;
    live.pack = {"pack-id", "1.2.3", "abc\"def"};
    live.edge.connections_evicted = 11;
    live.edge.connections_refused = 3;
    const std::string page = metrics.Prometheus(live);
    EXPECT_NE(page.find("\nmicrocare_jobs_queued 7\n"), std::string::npos) << page;
    EXPECT_NE(page.find("\nmicrocare_jobs_dead_total 2\n"), std::string::npos) << page;
    EXPECT_NE(page.find("\nmicrocare_http_connections_evicted_total 11\n"), std::string::npos);
    EXPECT_NE(page.find("\nmicrocare_http_connections_refused_total 3\n"), std::string::npos);
    // A label value is escaped, so a pack cannot break the exposition format.
    EXPECT_NE(page.find(R"(sha256="abc\"def"} 1)"), std::string::npos) << page;
}

// Issue 10: an EHR outage shows on the page: the EHR down, the oldest trigger's wait, and the
// retries by what they met, every reason always served so that sum() is the total.
TEST(Metrics, AnOutageShowsAsTheEhrDownTheOldestWaitAndRetriesByReason) {
    Metrics metrics;
    metrics.CountRetry(FailureReason::kConnect);
    metrics.CountRetry(FailureReason::kConnect);
    metrics.CountRetry(FailureReason::kHttp5xx);
    EXPECT_EQ(metrics.JobsRetried(), 3u);
    LiveReadings live;
    live.ehr_up = false;
    live.oldest_waiting_seconds = 720;
    const std::string page = metrics.Prometheus(live);
    EXPECT_NE(page.find("\nmicrocare_ehr_up 0\n"), std::string::npos) << page;
    EXPECT_NE(page.find("\nmicrocare_oldest_waiting_job_age_seconds 720\n"), std::string::npos);
    EXPECT_NE(page.find("\nmicrocare_jobs_retried_total{reason=\"connect\"} 2\n"),
              std::string::npos)
        << page;
    EXPECT_NE(page.find("\nmicrocare_jobs_retried_total{reason=\"http_5xx\"} 1\n"),
              std::string::npos);
    EXPECT_NE(page.find("\nmicrocare_jobs_retried_total{reason=\"timeout\"} 0\n"),
              std::string::npos);
    // One family: a single TYPE line, no unlabelled series beside the labelled ones.
    EXPECT_EQ(page.find("\nmicrocare_jobs_retried_total "), std::string::npos);

    EXPECT_NE(Metrics{}.Prometheus({}).find("\nmicrocare_ehr_up 1\n"), std::string::npos);
}

}  // namespace
}  // namespace microcare::adapter
