#pragma once

#include <memory>

#include "adapter/service_config.hpp"
#include "fhir/issues.hpp"

namespace boost::asio::ssl {
class context;
}

namespace microcare::adapter {

// The TLS contexts the service runs with, built from the configuration. Each failure is added to
// `issues` with the JSON path of the file it is about (`server.tls.privateKeyFile: does not
// match certificateFile`), so that `serve` and `config check` name the same file in the same
// words; nullptr when any step failed.
std::unique_ptr<boost::asio::ssl::context> ServerTlsContext(const TlsServerSettings& tls,
                                                            fhir::IssueList& issues);
std::unique_ptr<boost::asio::ssl::context> EhrTlsContext(const EhrSettings& ehr,
                                                         fhir::IssueList& issues);

}  // namespace microcare::adapter
