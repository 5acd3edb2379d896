#pragma once

#include "adapter/service_config.hpp"
#include "fhir/issues.hpp"

namespace microcare::adapter {

// What `serve` needs of the files a parsed configuration names, checked without starting
// anything: the rule pack validates as `rules check` validates it, the TLS files load and the
// key matches its certificate (the contexts the service itself builds, tls_contexts.hpp), the
// SMART key signs with its algorithm, and the store's and the audit trail's folders exist, or can
// be made, and are writable. Each problem is added with the JSON path of its setting.
void CheckServiceFiles(const ServiceConfig& config, fhir::IssueList& issues);

}  // namespace microcare::adapter
