#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>

#include "adapter/client/ehr.hpp"
#include "adapter/error.hpp"
#include "adapter/service_config.hpp"

namespace boost::asio::ssl {
class context;
}

namespace microcare::adapter {

class AuthProvider;
class FhirClient;
class HttpClient;

// The EHR as the configuration names it: TLS that verifies the peer (with the configured CA
// and client certificate), the HTTP client with the configured limits, the configured
// credentials and the FHIR client over them. The service and the command line (`rules
// replay`) build it here, so both reach the EHR in the same way.
class EhrConnection {
public:
    // `in_flight`: how many requests its user may have open at once (the worker's
    // concurrency); as many connections are kept alive between requests.
    static Result<std::unique_ptr<EhrConnection>> Open(boost::asio::any_io_executor executor,
                                                       const EhrSettings& settings,
                                                       std::size_t in_flight = 1);
    ~EhrConnection();
    EhrConnection(const EhrConnection&) = delete;
    EhrConnection& operator=(const EhrConnection&) = delete;

    Ehr& ehr();
    // The credentials alone, for `config check --connect` to tell a refused token from an
    // unreachable EHR.
    AuthProvider& auth();

private:
    EhrConnection();

    std::unique_ptr<boost::asio::ssl::context> tls_;
    std::unique_ptr<HttpClient> http_;
    std::unique_ptr<AuthProvider> auth_;
    std::unique_ptr<FhirClient> client_;
};

}  // namespace microcare::adapter
