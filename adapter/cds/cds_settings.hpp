#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace microcare::adapter {

// One CDS client (an EHR) allowed to call the CDS services: the `iss` of its JWTs, where its
// public keys are, and the FHIR servers its `fhirServer` may name (the only places its
// `fhirAuthorization` access token is ever sent).
struct CdsIssuer {
    std::string issuer;
    std::vector<std::string> jwks_urls;     // normal form; a JWT's `jku` must be one of them
    std::string jwks;                       // inline JWK Set (JSON), instead of or beside the URLs
    std::vector<std::string> fhir_servers;  // normal form

    bool operator==(const CdsIssuer&) const = default;
};

// CDS Hooks 2.0 (`cds` in the service configuration).
struct CdsSettings {
    bool enabled = false;  // the `cds` section is present
    // Where the services are, as the EHR calls them: `aud` must equal this plus
    // `/cds-services/{id}` (behind a proxy the server cannot know its public URL).
    std::string service_base_url;
    std::string path = "/cds-services";  // discovery; a service is path + "/" + id
    std::vector<CdsIssuer> issuers;
    // Browser-based CDS clients: origins allowed by CORS (exact, or "*" for any).
    std::vector<std::string> allowed_origins;
    std::chrono::seconds max_token_lifetime{300};  // `exp` at most this far ahead
    std::chrono::seconds clock_skew{30};
    // An unknown `kid` refreshes an issuer's key set at most once in this time.
    std::chrono::seconds jwks_refresh_interval{60};
    std::string ca_file;  // trust store for JWKS URLs and FHIR servers (empty: the system's)
    std::chrono::milliseconds fetch_timeout{10000};  // each request to a JWKS URL or fhirServer

    bool operator==(const CdsSettings&) const = default;
};

}  // namespace microcare::adapter
