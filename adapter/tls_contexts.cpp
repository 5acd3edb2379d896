#include "adapter/tls_contexts.hpp"

#include <openssl/ssl.h>

#include <boost/asio/ssl/context.hpp>

namespace microcare::adapter {
namespace {

namespace ssl = boost::asio::ssl;

// Adds the failure of one step, naming the setting and its file; true when the step passed.
bool Step(const boost::system::error_code& ec, fhir::IssueList& issues, const std::string& at,
          const std::string& file, const std::string& what) {
    if (!ec) return true;
    issues.Error("invalid", at, file + ": " + what + " (" + ec.message() + ")");
    return false;
}

// A setting naming a file: its JSON path and the file.
struct FileSetting {
    const char* at;
    const std::string& file;
};

// The certificate chain and its private key, for either side of a connection (the server's own,
// or the client certificate MicroCare shows the EHR): the same checks and the same words for
// both, the key's match with the certificate included.
bool UseCertificateAndKey(ssl::context& ctx, FileSetting certificate, FileSetting key,
                          fhir::IssueList& issues) {
    boost::system::error_code ec;
    ctx.use_certificate_chain_file(certificate.file, ec);
    if (!Step(ec, issues, certificate.at, certificate.file,
              "not a readable PEM certificate chain")) {
        return false;
    }
    ctx.use_private_key_file(key.file, ssl::context::pem, ec);
    if (!Step(ec, issues, key.at, key.file,
              "not a readable PEM private key, or not the key of the certificate")) {
        return false;
    }
    if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
        issues.Error("invalid", key.at,
                     key.file + ": does not match the certificate " + certificate.file);
        return false;
    }
    return true;
}

}  // namespace

std::unique_ptr<ssl::context> ServerTlsContext(const TlsServerSettings& tls,
                                               fhir::IssueList& issues) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                     ec);
    if (ec) {
        issues.Error("exception", "server.tls", "cannot set up TLS: " + ec.message());
        return nullptr;
    }
    if (!UseCertificateAndKey(*ctx, {"server.tls.certificateFile", tls.certificate_file},
                              {"server.tls.privateKeyFile", tls.private_key_file}, issues)) {
        return nullptr;
    }
    if (!tls.client_ca_file.empty()) {
        ctx->load_verify_file(tls.client_ca_file, ec);
        if (!Step(ec, issues, "server.tls.clientCaFile", tls.client_ca_file,
                  "not a readable PEM CA bundle")) {
            return nullptr;
        }
        ctx->set_verify_mode(
            ssl::verify_peer |
                (tls.require_client_certificate ? ssl::verify_fail_if_no_peer_cert : 0),
            ec);
        if (!Step(ec, issues, "server.tls.clientCaFile", tls.client_ca_file,
                  "cannot verify client certificates with it")) {
            return nullptr;
        }
    }
    return ctx;
}

std::unique_ptr<ssl::context> EhrTlsContext(const EhrSettings& ehr, fhir::IssueList& issues) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    boost::system::error_code ec;
    ctx->set_verify_mode(ssl::verify_peer, ec);
    if (ehr.ca_file.empty()) {
        if (!ec) ctx->set_default_verify_paths(ec);
        if (!Step(ec, issues, "ehr.caFile", "(the system's trust store)",
                  "cannot load the system's CA certificates")) {
            return nullptr;
        }
    } else {
        if (!ec) ctx->load_verify_file(ehr.ca_file, ec);
        if (!Step(ec, issues, "ehr.caFile", ehr.ca_file, "not a readable PEM CA bundle")) {
            return nullptr;
        }
    }
    if (!ehr.client_certificate_file.empty()) {
        if (!UseCertificateAndKey(*ctx, {"ehr.clientCertificateFile", ehr.client_certificate_file},
                                  {"ehr.clientKeyFile", ehr.client_key_file}, issues)) {
            return nullptr;
        }
    }
    return ctx;
}

}  // namespace microcare::adapter
