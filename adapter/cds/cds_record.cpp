#include "adapter/cds/cds_record.hpp"

#include <algorithm>
#include <set>

#include "adapter/client/fhir_client.hpp"
#include "adapter/client/smart_auth.hpp"

namespace microcare::adapter {
namespace {

// A prefetch value: a resource or a Bundle of them (a search's answer).
bool TakePrefetched(fhir::Node value, const std::string& path, std::vector<fhir::Node>& out,
                    fhir::IssueList& issues) {
    if (!value.IsObject() || value["resourceType"].String().empty()) {
        issues.Error("structure", path, "must be a FHIR resource or Bundle, or null");
        return false;
    }
    if (value["resourceType"].String() != "Bundle") {
        out.push_back(value);
        return true;
    }
    fhir::Node entries = value["entry"];
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        fhir::Node resource = entries[i]["resource"];
        // A search's OperationOutcome (search.mode "outcome") is no part of the record.
        if (resource.IsObject() && resource["resourceType"].String() != "OperationOutcome") {
            out.push_back(resource);
        }
    }
    return true;
}

GatheredRecord Refused(unsigned status, std::string_view code, const std::string& path,
                       const std::string& message) {
    GatheredRecord out;
    out.status = status;
    out.issues.Error(code, path, message);
    return out;
}

// Reads what was not prefetched from fhirServer, with the EHR's token and nowhere else (the
// FHIR client refuses `next` links that leave its base); the refusal when a read fails.
boost::asio::awaitable<std::optional<GatheredRecord>> FetchMissing(
    const HookRequest& request, const std::vector<PrefetchTemplate>& missing, HttpClient& http,
    rules::RecordDocuments& record, std::size_t& fetched) {
    fhir::IssueList issues;
    AuthSettings auth_settings;
    auth_settings.kind = AuthSettings::Kind::kBearer;
    auth_settings.bearer_token = request.access_token;
    AuthProvider auth(http, request.fhir_server, auth_settings);
    FhirClient server(http, auth, FhirClientOptions{request.fhir_server});
    for (const PrefetchTemplate& t : missing) {
        const std::string query = FillTemplate(t.query, request.patient_id, request.encounter_id);
        ++fetched;
        if (t.read) {
            auto response = co_await server.Get(query);
            if (!response || response->status / 100 != 2) {
                co_return Refused(response && response->status == 404 ? 412 : 502, "exception",
                                  "fhirServer",
                                  "GET " + query + " failed: " +
                                      (response ? "status " + std::to_string(response->status)
                                                : response.error().message()));
            }
            auto doc = fhir::JsonDocument::Parse(response->body, issues);
            if (!doc)
                co_return Refused(502, "exception", "fhirServer", "GET " + query + ": not JSON");
            record.resources.push_back(doc->Root());
            record.documents.push_back(std::move(*doc));
            continue;
        }
        auto search = co_await server.SearchAll(query);
        if (!search || search->failure) {
            co_return Refused(502, "exception", "fhirServer",
                              "GET " + query + " failed: " +
                                  (search ? "status " + std::to_string(search->failure->status)
                                          : search.error().message()));
        }
        record.resources.insert(record.resources.end(), search->resources.begin(),
                                search->resources.end());
        for (fhir::JsonDocument& page : search->pages) record.documents.push_back(std::move(page));
    }
    co_return std::nullopt;
}

}  // namespace

boost::asio::awaitable<GatheredRecord> GatherRecord(fhir::JsonDocument body,
                                                    const HookRequest& request, CdsHook hook,
                                                    const CdsIssuer& issuer, HttpClient& http) {
    GatheredRecord out;
    rules::RecordDocuments record;
    std::vector<PrefetchTemplate> missing;
    for (const PrefetchTemplate& t : PrefetchTemplates(hook)) {
        fhir::Node value = request.prefetch[t.key];
        // Absent or null: the EHR did not (or could not) prefetch it.
        if (!request.prefetch.Exists() || !value.Exists() || value.IsNull()) {
            missing.push_back(t);
            continue;
        }
        TakePrefetched(value, "prefetch." + std::string(t.key), record.resources, out.issues);
    }
    if (out.issues.HasErrors()) {
        out.status = 400;
        co_return out;
    }
    if (!missing.empty()) {
        const std::string what = "prefetch." + std::string(missing.front().key);
        if (request.fhir_server.empty()) {
            co_return Refused(412, "required", what,
                              "not prefetched, and no fhirServer to read it from");
        }
        if (std::find(issuer.fhir_servers.begin(), issuer.fhir_servers.end(),
                      request.fhir_server) == issuer.fhir_servers.end()) {
            // The token is the EHR's; it goes only where the configuration says this issuer's
            // data lives.
            co_return Refused(412, "security", "fhirServer",
                              "not a FHIR server trusted for issuer " + issuer.issuer +
                                  ": not contacted; send the prefetch instead");
        }
        if (request.access_token.empty()) {
            co_return Refused(412, "required", "fhirAuthorization",
                              "needed to read " + what + " from fhirServer");
        }
    }
    if (!missing.empty()) {
        auto refused = co_await FetchMissing(request, missing, http, record, out.fetched);
        if (refused) {
            refused->fetched = out.fetched;
            co_return std::move(*refused);
        }
    }
    record.resources.insert(record.resources.end(), request.proposed.begin(),
                            request.proposed.end());
    // The same resource may come twice (the encounter read, then in the patient's encounters):
    // the record holds it once.
    std::set<std::string> seen;
    std::erase_if(record.resources, [&](fhir::Node r) {
        if (r["id"].String().empty()) return false;
        return !seen.insert(std::string(r["resourceType"].String()) + "/" +
                            std::string(r["id"].String()))
                    .second;
    });
    record.documents.push_back(std::move(body));
    out.record = std::move(record);
    co_return out;
}

}  // namespace microcare::adapter
