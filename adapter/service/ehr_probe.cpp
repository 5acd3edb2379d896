#include "adapter/service/ehr_probe.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <string>

#include "adapter/client/ehr.hpp"
#include "adapter/client/search_page.hpp"
#include "adapter/client/smart_auth.hpp"
#include "adapter/poll/poll_cursor.hpp"
#include "adapter/service/ehr_connection.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

namespace asio = boost::asio;

// Why a request got no answer, and the setting that fixes it.
struct Problem {
    const char* at;
    std::string message;
};

Problem TransportProblem(const boost::system::error_code& error, const EhrSettings& settings,
                         const std::string& url, const char* at_url) {
    const std::string why = " (" + error.message() + ")";
    if (error == Error::kTlsFailed) {
        return {"ehr.caFile",
                "TLS with " + url + " failed" + why +
                    ": its certificate does not verify for its host name against " +
                    (settings.ca_file.empty() ? "the system's trust store"
                                              : "ehr.caFile " + settings.ca_file) +
                    " (or it refused ehr.clientCertificateFile). Fix: set ehr.caFile to the "
                    "CA that signed the EHR's certificate, and use the host name it names"};
    }
    if (error == Error::kTimeout) {
        return {at_url, url + ": no answer in time" + why +
                            ". Fix: check the address and that a firewall lets MicroCare "
                            "through, or raise ehr.connectTimeoutMs/requestTimeoutMs"};
    }
    if (error == Error::kConnectionFailed) {
        return {at_url, "cannot connect to " + url + why +
                            ". Fix: check the host and port, and that the EHR is up"};
    }
    if (error == Error::kRefusedUrl) {
        return {at_url, url + ": not an http(s) URL MicroCare may send to"};
    }
    return {at_url, url + ": no usable answer" + why};
}

// The poll's search, once, for one encounter updated in the last day.
asio::awaitable<void> ProbePoll(EhrConnection& connection, const EhrSettings& settings,
                                const PollSettings& poll, fhir::IssueList& issues) {
    const std::string search =
        PollSearch(poll.query, SystemNow() - std::chrono::hours(24), /*count=*/1);
    auto response = co_await connection.ehr().Get(search);
    if (!response) {
        const Problem problem = TransportProblem(response.error(), settings,
                                                 settings.base_url + "/" + search, "poll.query");
        issues.Error("exception", problem.at, problem.message);
        co_return;
    }
    if (response->status != 200) {
        issues.Error("not-supported", "poll.query",
                     "GET [base]/" + search + " answered HTTP " + std::to_string(response->status) +
                         ": the EHR does not run this search. Fix: poll.query, with only the "
                         "search parameters the EHR's CapabilityStatement lists for Encounter");
        co_return;
    }
    if (auto page = ParseSearchPage(response->body, settings.base_url); !page) {
        issues.Error("invalid", "poll.query",
                     "GET [base]/" + search +
                         " answered something that is no search Bundle (or a next link away "
                         "from ehr.baseUrl)");
    }
}

asio::awaitable<void> Probe(EhrConnection& connection, const EhrSettings& settings,
                            fhir::IssueList& issues, const PollSettings* poll) {
    if (settings.auth.kind == AuthSettings::Kind::kSmartBackend) {
        const bool configured = !settings.auth.token_endpoint.empty();
        const std::string endpoint = configured
                                         ? settings.auth.token_endpoint
                                         : settings.base_url + "/.well-known/smart-configuration";
        const char* at = configured ? "ehr.auth.tokenEndpoint" : "ehr.auth";
        auto header = co_await connection.auth().AuthorizationHeader();
        if (!header && header.error() == Error::kAuthFailed) {
            issues.Error(
                "security", at,
                "the token endpoint" +
                    std::string(configured ? " " + endpoint : " (discovered at " + endpoint + ")") +
                    " gave no access token: it refused the client assertion, or the "
                    "discovery document names none. Fix: check ehr.auth.clientId, "
                    "keyId and algorithm, and that the EHR has the public key of "
                    "ehr.auth.privateKeyFile registered for that client");
            co_return;
        }
        if (!header) {
            const Problem problem = TransportProblem(header.error(), settings, endpoint, at);
            issues.Error("exception", problem.at, "token: " + problem.message);
            co_return;
        }
    }
    const std::string url = settings.base_url + "/metadata";
    auto response = co_await connection.ehr().Get("metadata");
    if (!response) {
        const Problem problem = TransportProblem(response.error(), settings, url, "ehr.baseUrl");
        issues.Error("exception", problem.at, problem.message);
        co_return;
    }
    if (response->status == 401 || response->status == 403) {
        issues.Error("security", "ehr.auth",
                     "GET " + url + " answered HTTP " + std::to_string(response->status) +
                         ": the EHR refused MicroCare's credentials. Fix: check ehr.auth");
        co_return;
    }
    if (response->status != 200) {
        issues.Error("invalid", "ehr.baseUrl",
                     "GET " + url + " answered HTTP " + std::to_string(response->status) +
                         ". Fix: set ehr.baseUrl to the FHIR base (where [base]/metadata is)");
        co_return;
    }
    fhir::IssueList parse_issues;
    auto document = fhir::JsonDocument::Parse(response->body, parse_issues);
    const fhir::Node root = document ? document->Root() : fhir::Node();
    const std::string type(root["resourceType"].String());
    if (type != "CapabilityStatement") {
        issues.Error("invalid", "ehr.baseUrl",
                     "GET " + url + " answered " +
                         (document ? (type.empty() ? "JSON without a resourceType" : "a " + type)
                                   : std::string("something that is not JSON")) +
                         ", not a CapabilityStatement. Fix: set ehr.baseUrl to the FHIR base");
        co_return;
    }
    const std::string version(root["fhirVersion"].String());
    if (!version.starts_with("4.0.")) {
        issues.Error("not-supported", "ehr.baseUrl",
                     url + ": the server declares FHIR " +
                         (version.empty() ? std::string("(no fhirVersion)") : version) +
                         "; MicroCare speaks FHIR R4 (4.0.x). Fix: point ehr.baseUrl at the "
                         "EHR's R4 endpoint");
    }
    if (poll != nullptr) co_await ProbePoll(connection, settings, *poll, issues);
}

}  // namespace

void ProbeEhr(const EhrSettings& settings, fhir::IssueList& issues, const PollSettings* poll) {
    asio::io_context io;
    auto connection = EhrConnection::Open(io.get_executor(), settings);
    if (!connection) {
        // Only TLS set-up fails here, which the offline checks have named with its file.
        issues.Error("exception", "ehr", "cannot set up the connection to the EHR");
        return;
    }
    auto done = asio::co_spawn(io, Probe(**connection, settings, issues, poll), asio::use_future);
    io.run();
    done.get();  // rethrows what the probe threw
}

}  // namespace microcare::adapter
