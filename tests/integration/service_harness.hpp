#pragma once

// Helpers for the service's integration tests: a running Service in process on port 0 against
// a FakeEhr, a small client, and waiting for a condition with a deadline.

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "adapter/client/http_client.hpp"
#include "adapter/service/service.hpp"
#include "adapter/service_config.hpp"
#include "fake_ehr.hpp"

namespace microcare::testing {

inline constexpr const char* kToken = "integration-test-token-0123456789";

// Polls `condition` until it holds or `timeout` passes; the answer says which.
bool WaitFor(const std::function<bool()>& condition,
             std::chrono::milliseconds timeout = std::chrono::seconds(20));

std::string ReadSource(const std::string& relative);
std::filesystem::path FreshDirectory(const std::string& name);

// A configuration for tests: port 0, fast retries, short timeouts, a store in `dir`.
adapter::ServiceConfig TestConfig(const std::string& ehr_base, const std::filesystem::path& dir);

// Sends one request with MicroCare's own HTTP client (plain or TLS).
struct Reply {
    unsigned status = 0;
    std::string body;
    std::string error;  // transport error, if any
    std::vector<std::pair<std::string, std::string>> headers;
};
Reply Send(const std::string& method, const std::string& url, const std::string& body,
           std::vector<std::pair<std::string, std::string>> headers,
           boost::asio::ssl::context* tls = nullptr);
Reply PostJson(const std::string& url, const std::string& body, const std::string& token = kToken);

// A $process-message Bundle about `encounter` ("Encounter/x").
std::string MessageBundle(const std::string& bundle_id, const std::string& header_id,
                          const std::string& encounter);

// A microneedling Encounter of Patient/`patient`, for seeding the fake EHR.
std::string MicroneedlingEncounter(const std::string& id, const std::string& patient,
                                   const std::string& start);

}  // namespace microcare::testing
