#include "adapter/service_files.hpp"

#include <unistd.h>

#include <boost/asio/ssl/context.hpp>
#include <filesystem>

#include "adapter/client/jwt.hpp"
#include "adapter/rule_pack_file.hpp"
#include "adapter/tls_contexts.hpp"

namespace microcare::adapter {
namespace {

namespace fs = std::filesystem;

// The service creates a missing data folder on its first start (service.cpp): what matters is
// that the file, when there, and the nearest folder that exists can be written by this user.
void CheckWritable(const std::string& file, const std::string& at, fhir::IssueList& issues) {
    std::error_code error;
    if (fs::exists(file, error)) {
        if (::access(file.c_str(), R_OK | W_OK) != 0) {
            issues.Error("security", at,
                         file +
                             ": not writable by this user: give it to the "
                             "service's user (chown microcare)");
        }
        return;
    }
    fs::path folder = fs::absolute(file, error).parent_path();
    while (!folder.empty() && !fs::exists(folder, error) && folder != folder.root_path()) {
        folder = folder.parent_path();
    }
    if (!fs::is_directory(folder, error)) {
        issues.Error("not-found", at, folder.string() + ": not a folder: fix the path");
    } else if (::access(folder.c_str(), W_OK | X_OK) != 0) {
        issues.Error("security", at,
                     folder.string() + ": this user cannot create " + file +
                         " there: create the folder for the service's user, or fix the path");
    }
}

}  // namespace

void CheckServiceFiles(const ServiceConfig& config, fhir::IssueList& issues) {
    const std::string pack_path =
        config.rules_path.empty() ? DefaultRulePackPath() : config.rules_path;
    fhir::IssueList pack_issues;
    if (!LoadRulePackFile(pack_path, pack_issues)) {
        for (const fhir::Issue& issue : pack_issues) {
            issues.Error(issue.code, "rules.path", pack_path + ": " + fhir::FormatIssue(issue));
        }
    }
    if (config.server.tls) static_cast<void>(ServerTlsContext(*config.server.tls, issues));
    static_cast<void>(EhrTlsContext(config.ehr, issues));
    const AuthSettings& auth = config.ehr.auth;
    if (auth.kind == AuthSettings::Kind::kSmartBackend && !auth.private_key_pem.empty() &&
        !JwtSigner::Load(auth.private_key_pem, auth.algorithm)) {
        issues.Error("invalid", "ehr.auth.privateKeyFile",
                     "not an unencrypted PEM private key for " + auth.algorithm +
                         " (RS384: RSA of 2048 bits or more; ES384: EC on P-384)");
    }
    // A PostgreSQL store holds the trail too: no file of MicroCare's own to write.
    if (config.store.IsFile()) {
        CheckWritable(config.store.path, "store.path", issues);
        CheckWritable(config.audit.path, "audit.path", issues);
        CheckWritable(config.audit.checkpoint_path, "audit.checkpointPath", issues);
    }
}

}  // namespace microcare::adapter
