#include "adapter/service/ehr_connection.hpp"

#include <algorithm>
#include <boost/asio/ssl/context.hpp>

#include "adapter/client/fhir_client.hpp"
#include "adapter/client/http_client.hpp"
#include "adapter/client/smart_auth.hpp"
#include "adapter/log.hpp"
#include "adapter/tls_contexts.hpp"
#include "fhir/issues.hpp"

namespace microcare::adapter {

EhrConnection::EhrConnection() = default;
EhrConnection::~EhrConnection() = default;

Result<std::unique_ptr<EhrConnection>> EhrConnection::Open(boost::asio::any_io_executor executor,
                                                           const EhrSettings& settings,
                                                           std::size_t in_flight) {
    std::unique_ptr<EhrConnection> connection(new EhrConnection());
    // Every failure names its setting and file, as `config check` does.
    fhir::IssueList issues;
    connection->tls_ = EhrTlsContext(settings, issues);
    if (issues.HasErrors() || !connection->tls_) {
        for (const fhir::Issue& issue : issues) {
            Log::Error("cannot set up TLS to the EHR",
                       {{"path", issue.path}, {"problem", issue.message}});
        }
        return Error::kInvalidConfig;
    }
    HttpClientOptions http_options;
    http_options.connect_timeout = settings.connect_timeout;
    http_options.request_timeout = settings.request_timeout;
    http_options.max_response_bytes = settings.max_response_bytes;
    // A connection the pool cannot keep is closed after its request: with more requests in
    // flight than connections kept, nearly every request would pay a new connection (and TLS
    // handshake) and leave a socket in TIME_WAIT (the load driver left 16,000 in 4 s).
    http_options.max_idle_per_host = std::max(http_options.max_idle_per_host, in_flight);
    connection->http_ = std::make_unique<HttpClient>(executor, *connection->tls_, http_options);
    connection->auth_ =
        std::make_unique<AuthProvider>(*connection->http_, settings.base_url, settings.auth);
    connection->client_ = std::make_unique<FhirClient>(*connection->http_, *connection->auth_,
                                                       FhirClientOptions{settings.base_url});
    return connection;
}

Ehr& EhrConnection::ehr() { return *client_; }

AuthProvider& EhrConnection::auth() { return *auth_; }

}  // namespace microcare::adapter
