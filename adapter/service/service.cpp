#include "adapter/service/service.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_future.hpp>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "adapter/audit/audit_log.hpp"
#include "adapter/client/fhir_client.hpp"
#include "adapter/client/http_client.hpp"
#include "adapter/client/smart_auth.hpp"
#include "adapter/log.hpp"
#include "adapter/metrics.hpp"
#include "adapter/rule_pack_file.hpp"
#include "adapter/server/fhir_endpoint.hpp"
#include "adapter/server/http_server.hpp"
#include "adapter/service/worker.hpp"
#include "adapter/store/job_store.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;

Result<std::unique_ptr<ssl::context>> ServerTls(const TlsServerSettings& tls) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                     ec);
    if (!ec) ctx->use_certificate_chain_file(tls.certificate_file, ec);
    if (!ec) ctx->use_private_key_file(tls.private_key_file, ssl::context::pem, ec);
    if (!ec && !tls.client_ca_file.empty()) {
        ctx->load_verify_file(tls.client_ca_file, ec);
        if (!ec) {
            ctx->set_verify_mode(
                ssl::verify_peer |
                    (tls.require_client_certificate ? ssl::verify_fail_if_no_peer_cert : 0),
                ec);
        }
    }
    if (ec) {
        Log::Error("cannot set up TLS", {{"error", ec.message()}});
        return Error::kInvalidConfig;
    }
    return ctx;
}

Result<std::unique_ptr<ssl::context>> ClientTls(const EhrSettings& ehr) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    boost::system::error_code ec;
    ctx->set_verify_mode(ssl::verify_peer, ec);
    if (!ec) {
        if (ehr.ca_file.empty()) {
            ctx->set_default_verify_paths(ec);
        } else {
            ctx->load_verify_file(ehr.ca_file, ec);
        }
    }
    if (!ec && !ehr.client_certificate_file.empty()) {
        ctx->use_certificate_chain_file(ehr.client_certificate_file, ec);
        if (!ec) ctx->use_private_key_file(ehr.client_key_file, ssl::context::pem, ec);
    }
    if (ec) {
        Log::Error("cannot set up TLS to the EHR", {{"error", ec.message()}});
        return Error::kInvalidConfig;
    }
    return ctx;
}

}  // namespace

struct Service::Impl {
    ServiceConfig config;
    asio::io_context io;
    asio::thread_pool blocking{2};
    Metrics metrics;
    std::unique_ptr<JobStore> store;
    std::unique_ptr<AuditLog> audit;
    std::shared_ptr<const rules::RuleSet> rules;
    std::unique_ptr<ssl::context> server_tls;
    std::unique_ptr<ssl::context> client_tls;
    std::unique_ptr<HttpClient> http;
    std::unique_ptr<AuthProvider> auth;
    std::unique_ptr<FhirClient> ehr;
    std::unique_ptr<Worker> worker;
    std::unique_ptr<FhirEndpoint> endpoint;
    std::unique_ptr<HttpServer> server;
    unsigned short port = 0;
    std::vector<std::thread> threads;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
    std::atomic<bool> ready{false};
    std::mutex mutex;
    std::condition_variable stopped_cv;
    bool stopped = false;   // Stop() has begun
    bool finished = false;  // ... and has ended
};

Service::Service() : impl_(std::make_unique<Impl>()) {}

Service::~Service() { Stop(); }

Result<std::unique_ptr<Service>> Service::Create(const ServiceConfig& config) {
    std::unique_ptr<Service> service(new Service());
    Impl& s = *service->impl_;
    s.config = config;
    if (auto level = ParseLogLevel(config.log_level)) Log::SetLevel(*level);

    fhir::IssueList issues;
    const std::string rules_path =
        config.rules_path.empty() ? DefaultRulePackPath() : config.rules_path;
    auto pack = LoadRulePackFile(rules_path, issues);
    if (!pack) {
        for (const fhir::Issue& issue : issues) {
            Log::Error("the rule pack is refused",
                       {{"path", issue.path}, {"problem", issue.message}});
        }
        return Error::kInvalidConfig;
    }
    s.rules = std::make_shared<const rules::RuleSet>(std::move(*pack));
    Log::Info("rule pack loaded",
              {{"pack", s.rules->id}, {"version", s.rules->version}, {"sha256", s.rules->sha256}});

    // The data directory is made on first start.
    for (const std::string& file : {config.store.path, config.audit.path}) {
        std::error_code ignored;
        const auto parent = std::filesystem::path(file).parent_path();
        if (!parent.empty()) std::filesystem::create_directories(parent, ignored);
    }
    StoreOptions store_options;
    store_options.synchronous_full = config.store.synchronous;
    auto store = JobStore::Open(config.store.path, store_options);
    if (!store) {
        Log::Error("cannot open the store", {{"path", config.store.path}});
        return store.error();
    }
    s.store = std::move(*store);
    auto audit = AuditLog::Open(config.audit);
    if (!audit) {
        Log::Error("cannot open the audit log (damaged, or not writable)",
                   {{"path", config.audit.path}});
        return audit.error();
    }
    s.audit = std::move(*audit);

    if (config.server.tls) {
        auto tls = ServerTls(*config.server.tls);
        if (!tls) return tls.error();
        s.server_tls = std::move(*tls);
    }
    auto client_tls = ClientTls(config.ehr);
    if (!client_tls) return client_tls.error();
    s.client_tls = std::move(*client_tls);

    HttpClientOptions http_options;
    http_options.connect_timeout = config.ehr.connect_timeout;
    http_options.request_timeout = config.ehr.request_timeout;
    http_options.max_response_bytes = config.ehr.max_response_bytes;
    s.http = std::make_unique<HttpClient>(s.io.get_executor(), *s.client_tls, http_options);
    s.auth = std::make_unique<AuthProvider>(*s.http, config.ehr.base_url, config.ehr.auth);
    s.ehr = std::make_unique<FhirClient>(*s.http, *s.auth, FhirClientOptions{config.ehr.base_url});
    s.worker = std::make_unique<Worker>(s.io.get_executor(), config.worker, *s.store, *s.ehr,
                                        s.rules, s.metrics, s.blocking, *s.audit);
    s.endpoint =
        std::make_unique<FhirEndpoint>(config.server, *s.store, s.metrics, s.blocking, *s.audit,
                                       FhirEndpoint::LiveState{[&s] { return s.ready.load(); },
                                                               [&s] { return s.rules->Identity(); },
                                                               [&s] { return s.server->stats(); }});
    Worker* worker = s.worker.get();
    FhirEndpoint* endpoint = s.endpoint.get();
    s.server = std::make_unique<HttpServer>(
        s.io, config.server, s.server_tls.get(),
        [endpoint, worker](HttpRequestIn request) -> asio::awaitable<HttpResponseOut> {
            HttpResponseOut out = co_await endpoint->Handle(std::move(request));
            if (out.status < 300) worker->Wake();
            co_return out;
        },
        FhirEndpoint::ProtocolRefusal,
        [endpoint](const HttpRequestIn& head) { return endpoint->Admit(head); });
    auto port = s.server->Listen();
    if (!port) return port.error();
    s.port = *port;
    return service;
}

unsigned short Service::port() const { return impl_->port; }

JobStore& Service::store() { return *impl_->store; }

void Service::Start() {
    Impl& s = *impl_;
    s.work.emplace(s.io.get_executor());
    s.server->Start();
    s.worker->Start();
    const int threads = std::max(1, s.config.server.threads);
    for (int i = 0; i < threads; ++i) s.threads.emplace_back([&s] { s.io.run(); });
    s.ready = true;
    Log::Info("MicroCare is listening", {{"port", std::to_string(s.port)},
                                         {"tls", s.server_tls ? "on" : "off"},
                                         {"ehr", s.config.ehr.base_url}});
}

void Service::Stop() {
    Impl& s = *impl_;
    {
        std::lock_guard lock(s.mutex);
        if (s.stopped) return;
        s.stopped = true;
    }
    s.ready = false;
    if (!s.threads.empty()) {
        Log::Info("stopping: no new connections; finishing work in flight");
        s.server->Stop();
        auto grace =
            std::chrono::duration_cast<std::chrono::milliseconds>(s.config.worker.shutdown_grace);
        const auto deadline = std::chrono::steady_clock::now() + grace;
        auto done = asio::co_spawn(s.io, s.worker->Stop(grace), asio::use_future);
        done.wait();
        // Requests in flight (a trigger waiting for its commit) are answered before the I/O
        // threads stop; only connections still open when the grace period ends are cut.
        while (s.server->open_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        s.work.reset();
        s.io.stop();
        for (std::thread& t : s.threads) t.join();
        s.threads.clear();
    }
    s.blocking.join();
    if (s.store) s.store->Close();
    Log::Info("stopped");
    std::lock_guard lock(s.mutex);
    s.finished = true;
    s.stopped_cv.notify_all();
}

void Service::Wait(bool handle_signals) {
    Impl& s = *impl_;
    std::optional<asio::signal_set> signals;
    if (handle_signals) {
        signals.emplace(s.io, SIGTERM, SIGINT);
        signals->async_wait([this](const boost::system::error_code& ec, int) {
            if (!ec) std::thread([this] { Stop(); }).detach();
        });
    }
    std::unique_lock lock(s.mutex);
    s.stopped_cv.wait(lock, [&s] { return s.finished; });
}

}  // namespace microcare::adapter
