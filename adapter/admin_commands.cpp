#include "adapter/admin_commands.hpp"

#include <ostream>

#include "adapter/issue_report.hpp"
#include "adapter/service/ehr_probe.hpp"
#include "adapter/service/service.hpp"
#include "adapter/service_config.hpp"
#include "adapter/service_files.hpp"
#include "adapter/store/job_store.hpp"

namespace microcare::adapter {
int RunServe(const std::string& config_path, std::ostream& err) {
    fhir::IssueList issues;
    auto config = LoadServiceConfig(config_path, issues);
    // The files are checked as `config check` checks them, so that a refusal names its setting
    // and file on the terminal, not only in the log.
    if (config) CheckServiceFiles(*config, issues);
    ReportIssues(err, config_path, issues);
    if (!config || issues.HasErrors()) return 2;
    auto service = Service::Create(*config, config_path);
    if (!service) {
        err << "microcare: cannot start (" << service.error().message() << "); see the log above\n";
        return 1;
    }
    (*service)->Start(true);
    (*service)->Wait(true);
    return 0;
}

int RunConfigCheck(const std::string& config_path, std::ostream& out, std::ostream& err,
                   bool connect) {
    fhir::IssueList issues;
    auto config = LoadServiceConfig(config_path, issues);
    // The files only once the settings parse: a setting already reported is not reported again
    // as a missing file.
    if (config) CheckServiceFiles(*config, issues);
    // The EHR only with settings and files that serve would accept: a missing CA file is
    // named as such, not as a failed handshake.
    if (connect && config && !issues.HasErrors()) {
        ProbeEhr(config->ehr, issues, config->poll.enabled ? &config->poll : nullptr);
    }
    ReportIssues(err, config_path, issues);
    if (!config || issues.HasErrors()) {
        ReportRefused(err, config_path, issues);
        return 2;
    }
    if (connect) {
        const bool tls = config->ehr.base_url.starts_with("https:");
        const bool smart = config->ehr.auth.kind == AuthSettings::Kind::kSmartBackend;
        out << config_path << ": the EHR at " << config->ehr.base_url
            << " answered: " << (tls ? "TLS verified, " : "plain HTTP (no TLS), ")
            << (smart ? "SMART token obtained, " : "")
            << "metadata is a FHIR R4 CapabilityStatement\n";
    }
    out << config_path << ": valid; listens on " << config->server.listen << ":"
        << config->server.port << (config->server.tls ? " (TLS)" : "") << ", EHR at "
        << config->ehr.base_url << ", store " << RedactStoreLocation(config->store.Location())
        << "\n";
    return 0;
}

}  // namespace microcare::adapter
