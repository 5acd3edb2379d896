#include "service_harness.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/use_future.hpp>
#include <fstream>
#include <random>
#include <sstream>

#include "fhir/transaction_builder.hpp"

namespace microcare::testing {

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (condition()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return condition();
}

std::string ReadSource(const std::string& relative) {
    std::ifstream in(std::string(MICROCARE_SOURCE_DIR) + "/" + relative, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

std::filesystem::path FreshDirectory(const std::string& name) {
    static std::mt19937_64 random{std::random_device{}()};
    auto dir = std::filesystem::temp_directory_path() /
               ("microcare-" + name + "-" + std::to_string(random()));
    std::filesystem::create_directories(dir);
    return dir;
}

adapter::ServiceConfig TestConfig(const std::string& ehr_base, const std::filesystem::path& dir) {
    adapter::ServiceConfig config;
    config.server.listen = "127.0.0.1";
    config.server.port = 0;
    config.server.bearer_tokens = {kToken};
    config.server.max_body_bytes = 256 * 1024;
    config.server.request_timeout = std::chrono::seconds(5);
    config.store.path = (dir / "microcare.db").string();
    config.audit.path = (dir / "audit.log").string();
    config.worker.concurrency = 4;
    config.worker.max_attempts = 5;
    config.worker.backoff_initial = std::chrono::milliseconds(20);
    config.worker.backoff_max = std::chrono::milliseconds(200);
    config.worker.poll_interval = std::chrono::milliseconds(20);
    config.worker.lease = std::chrono::seconds(3);
    config.worker.shutdown_grace = std::chrono::seconds(2);
    config.ehr.base_url = ehr_base;
    config.ehr.connect_timeout = std::chrono::seconds(2);
    config.ehr.request_timeout = std::chrono::milliseconds(800);
    config.rules_path = std::string(MICROCARE_SOURCE_DIR) + "/config/rules/microneedling.json";
    config.log_level = "warning";
    return config;
}

Reply Send(const std::string& method, const std::string& url, const std::string& body,
           std::vector<std::pair<std::string, std::string>> headers,
           boost::asio::ssl::context* tls) {
    boost::asio::io_context io;
    boost::asio::ssl::context plain(boost::asio::ssl::context::tls_client);
    adapter::HttpClientOptions options;
    options.request_timeout = std::chrono::seconds(10);
    adapter::HttpClient client(io.get_executor(), tls ? *tls : plain, options);
    adapter::HttpRequest request{method, url, body, std::move(headers)};
    auto future =
        boost::asio::co_spawn(io, client.Send(std::move(request)), boost::asio::use_future);
    io.run();
    auto result = future.get();
    Reply reply;
    if (!result) {
        reply.error = result.error().message();
        return reply;
    }
    reply.status = result->status;
    reply.body = result->body;
    reply.headers = result->headers;
    return reply;
}

Reply PostJson(const std::string& url, const std::string& body, const std::string& token) {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "application/fhir+json"}};
    if (!token.empty()) headers.emplace_back("Authorization", "Bearer " + token);
    return Send("POST", url, body, std::move(headers));
}

std::string MessageBundle(const std::string& bundle_id, const std::string& header_id,
                          const std::string& encounter) {
    return R"({"resourceType":"Bundle","id":")" + bundle_id +
           R"(","type":"message","timestamp":"2026-11-20T11:00:00Z","entry":[{"fullUrl":"urn:uuid:)" +
           fhir::DeterministicUuid(header_id) +
           R"(","resource":{"resourceType":"MessageHeader","id":")" + header_id +
           R"(","eventCoding":{"system":"https://ehr.example/events","code":"encounter-end"},"source":{"endpoint":"https://ehr.example/messaging"},"focus":[{"reference":")" +
           encounter + R"("}]}}]})";
}

std::string MicroneedlingEncounter(const std::string& id, const std::string& patient,
                                   const std::string& start) {
    return R"({"resourceType":"Encounter","id":")" + id +
           R"(","status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"type":[{"coding":[{"system":"https://microcare.example/CodeSystem/procedure","code":"microneedling","display":"Microneedling"}]}],"subject":{"reference":"Patient/)" +
           patient + R"("},"period":{"start":")" + start + R"("}})";
}

}  // namespace microcare::testing
