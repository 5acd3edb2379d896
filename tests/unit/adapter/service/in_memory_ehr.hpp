// An EHR in memory for the worker's unit tests: reads, batches, searches and transactions
// answered from a map of resources, with answers that can be scripted per request. No sockets:
// the real HTTP path is covered by the integration suite against FakeEhr and Medplum.
#pragma once

#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "adapter/client/ehr.hpp"
#include "adapter/client/search_page.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter::testing {

// A search answered in one page (a searchset Bundle without `next`), as SearchAll returns it:
// read by the parser FhirClient uses.
inline SearchResult OnePageResult(const std::string& body) {
    SearchResult result;
    auto page = ParseSearchPage(body, "");
    if (!page) return result;
    result.resources = std::move(page->resources);
    result.pages.push_back(std::move(page->document));
    result.page_count = 1;
    return result;
}

class InMemoryEhr : public Ehr {
public:
    // `resource` is FHIR JSON with resourceType and id.
    void Put(const std::string& resource) {
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(resource, issues);
        const std::string key = std::string(doc->Root()["resourceType"].String()) + "/" +
                                std::string(doc->Root()["id"].String());
        resources_[key] = resource;
    }

    void Remove(const std::string& key) { resources_.erase(key); }

    // The next request whose "METHOD path" starts with `request` gets `answer` instead.
    void Script(const std::string& request, HttpResponse answer) {
        scripted_.push_back({request, std::move(answer)});
    }
    // While set, every request gets this answer: the EHR is down.
    std::optional<HttpResponse> outage;
    // While set, every request fails with this error before any answer: the EHR cannot be
    // reached (Error::kConnectionFailed, kTimeout, ...).
    std::optional<Error> unreachable;
    // Runs before the answer to every request ("METHOD path"): lets a test act mid-job.
    std::function<void(const std::string& request)> on_request;

    std::vector<std::string> requests;      // "METHOD path", in order
    std::vector<std::string> transactions;  // bodies of the transactions posted
    std::vector<std::string> deliveries;    // bodies posted anywhere but the base

    std::size_t CarePlans() const { return Stored("CarePlan").size(); }
    // While non-zero, a transaction is held until this many have arrived, then each is applied
    // in turn: writers that raced from one reading, as two services against one EHR do.
    std::size_t gather_transactions = 0;
    // Runs once, on the next transaction, before it is applied: a rival writer acting first.
    std::function<void(const std::string& body)> on_transaction;

    boost::asio::awaitable<Result<HttpResponse>> Get(std::string path) override {
        if (unreachable) co_return Unreachable("GET " + path);
        if (auto scripted = Seen("GET " + path)) co_return *scripted;
        auto it = resources_.find(path);
        if (it == resources_.end()) co_return Answer(404, R"({"resourceType":"OperationOutcome"})");
        co_return Answer(200, it->second);
    }

    boost::asio::awaitable<Result<HttpResponse>> Post(std::string path, std::string body) override {
        if (unreachable) co_return Unreachable("POST " + path);
        if (auto scripted = Seen("POST " + path)) co_return *scripted;
        if (!path.empty()) {
            deliveries.push_back(body);
            co_return Answer(200, "{}");
        }
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(body, issues);
        const fhir::Node entries = doc->Root()["entry"];
        if (doc->Root()["type"].String() == "batch") {
            std::string answer = R"({"resourceType":"Bundle","type":"batch-response","entry":[)";
            for (std::size_t i = 0; i < entries.Size(); ++i) {
                const std::string url(entries[i]["request"]["url"].String());
                if (entries[i]["request"]["method"].String() == "POST") {
                    answer += i == 0 ? "" : ",";
                    answer +=
                        R"({"response":{"status":")" + CreateAuditEvent(entries[i]) + R"("}})";
                    continue;
                }
                auto it = resources_.find(url);
                const bool search = url.find('?') != std::string::npos;
                answer += i == 0 ? "" : ",";
                answer += R"({"response":{"status":")";
                answer += search || it != resources_.end() ? "200" : "404";
                answer += R"("},"resource":)";
                answer += search ? Searchset(url.substr(0, url.find('?')))
                                 : (it != resources_.end() ? it->second : "{}");
                answer += "}";
            }
            co_return Answer(200, answer + "]}");
        }
        transactions.push_back(body);
        if (gather_transactions > 0) co_await Gathered();
        if (on_transaction) {
            // Clear it first: what it posts is not a transaction to intercept again.
            auto hook = std::move(on_transaction);
            on_transaction = nullptr;
            hook(body);
        }
        co_return Transact(body);
    }

    // Applies a transaction Bundle as a FHIR server does, all or nothing: a POST with
    // ifNoneExist creates only when no resource of its type carries the identifier; a PUT with
    // ifMatch lands only on that version (else 412 and nothing changes). Each write gets an id
    // and a new meta.versionId.
    HttpResponse Transact(const std::string& body) {
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(body, issues);
        const fhir::Node entries = doc->Root()["entry"];
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            const fhir::Node request = entries[i]["request"];
            if (request["method"].String() != "PUT") continue;
            auto it = resources_.find(std::string(request["url"].String()));
            const std::string expected(request["ifMatch"].String());
            if (it == resources_.end() || expected != "W/\"" + VersionOf(it->second) + "\"") {
                return Answer(412, R"({"resourceType":"OperationOutcome","issue":[]})");
            }
        }
        std::vector<std::string> locations;  // Type/id/_history/vid, one per entry
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            const fhir::Node request = entries[i]["request"];
            const fhir::Node resource = entries[i]["resource"];
            const std::string type(resource["resourceType"].String());
            if (request["method"].String() == "PUT") {
                const std::string key(request["url"].String());
                const int version = std::stoi(VersionOf(resources_[key])) + 1;
                resources_[key] = Stamp(resource, key.substr(key.find('/') + 1), version);
                locations.push_back(key + "/_history/" + std::to_string(version));
                continue;
            }
            const std::string wanted(request["ifNoneExist"].String());
            if (!wanted.empty()) {
                if (auto existing = WithIdentifier(type, wanted.substr(wanted.find('|') + 1))) {
                    locations.push_back(*existing);
                    continue;
                }
            }
            const std::string id = "w" + std::to_string(++next_id_);
            resources_[type + "/" + id] = Stamp(resource, id, 1);
            locations.push_back(type + "/" + id + "/_history/1");
        }
        std::string answer = R"({"resourceType":"Bundle","type":"transaction-response","entry":[)";
        for (std::size_t i = 0; i < locations.size(); ++i) {
            answer += (i == 0 ? "" : ",") +
                      std::string(R"({"response":{"status":"200","location":")") + locations[i] +
                      R"("}})";
        }
        return Answer(200, answer + "]}");
    }

    // An AuditEvent of a batch entry, created unless one has the entity name its ifNoneExist
    // asks for (`entity-name:exact=`); the entry's status.
    std::string CreateAuditEvent(fhir::Node entry) {
        const std::string wanted(entry["request"]["ifNoneExist"].String());
        const std::string key = wanted.substr(wanted.find('=') + 1);
        for (const std::string& event : Stored("AuditEvent")) {
            if (FieldOfEntity(event) == key) return "200 OK";
        }
        const std::string id = "ae" + std::to_string(++next_id_);
        resources_["AuditEvent/" + id] = Stamp(entry["resource"], id, 1);
        return "201 Created";
    }

    // The resources of a type, as stored (FHIR JSON with id and meta.versionId).
    std::vector<std::string> Stored(const std::string& type) const {
        std::vector<std::string> found;
        for (const auto& [key, resource] : resources_) {
            if (key.starts_with(type + "/")) found.push_back(resource);
        }
        return found;
    }

    boost::asio::awaitable<Result<SearchResult>> SearchAll(std::string query) override {
        if (unreachable) co_return Unreachable("GET " + query);
        requests.push_back("GET " + query);
        co_return OnePageResult(Searchset(query.substr(0, query.find('?'))));
    }

private:
    boost::asio::awaitable<void> Gathered() {
        ++gathered_;
        while (gathered_ < gather_transactions) {
            co_await boost::asio::post(co_await boost::asio::this_coro::executor,
                                       boost::asio::use_awaitable);
        }
    }

    Error Unreachable(const std::string& request) {
        requests.push_back(request);
        if (on_request) on_request(request);
        return *unreachable;
    }

    static HttpResponse Answer(unsigned status, std::string body) {
        HttpResponse response;
        response.status = status;
        response.body = std::move(body);
        return response;
    }

    std::optional<HttpResponse> Seen(const std::string& request) {
        requests.push_back(request);
        if (on_request) on_request(request);
        if (outage) return outage;
        for (auto it = scripted_.begin(); it != scripted_.end(); ++it) {
            if (!request.starts_with(it->first)) continue;
            HttpResponse answer = std::move(it->second);
            scripted_.erase(it);
            return answer;
        }
        return std::nullopt;
    }

    static std::string VersionOf(const std::string& resource) {
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(resource, issues);
        const std::string version(doc->Root()["meta"]["versionId"].String());
        return version.empty() ? "0" : version;
    }

    // The location (Type/id/_history/vid) of the resource of `type` with the identifier value.
    std::optional<std::string> WithIdentifier(const std::string& type,
                                              const std::string& value) const {
        for (const std::string& resource : Stored(type)) {
            fhir::IssueList issues;
            auto doc = fhir::JsonDocument::Parse(resource, issues);
            const fhir::Node identifiers = doc->Root()["identifier"];
            for (std::size_t i = 0; i < identifiers.Size(); ++i) {
                if (identifiers[i]["value"].String() != value) continue;
                return type + "/" + std::string(doc->Root()["id"].String()) + "/_history/" +
                       std::string(doc->Root()["meta"]["versionId"].String());
            }
        }
        return std::nullopt;
    }

    static std::string FieldOfEntity(const std::string& event) {
        fhir::IssueList issues;
        auto doc = fhir::JsonDocument::Parse(event, issues);
        return std::string(doc->Root()["entity"][0]["name"].String());
    }

    // `resource` with its id and meta.versionId set as a server sets them.
    static std::string Stamp(fhir::Node resource, const std::string& id, int version) {
        fhir::JsonWriter out;
        out.StartObject();
        resource.ForEachMember([&](std::string_view name, fhir::Node member) {
            if (name == "id" || name == "meta") return;
            out.Key(name);
            out.Value(member);
        });
        out.Field("id", id);
        out.Key("meta");
        out.StartObject();
        resource["meta"].ForEachMember([&](std::string_view name, fhir::Node member) {
            if (name == "versionId") return;
            out.Key(name);
            out.Value(member);
        });
        out.Field("versionId", std::to_string(version));
        out.EndObject();
        out.EndObject();
        return out.Take();
    }

    std::string Searchset(const std::string& type) const {
        std::string bundle = R"({"resourceType":"Bundle","type":"searchset","entry":[)";
        bool first = true;
        auto add = [&](const std::string& resource) {
            bundle += (first ? "" : ",") + std::string(R"({"resource":)") + resource + "}";
            first = false;
        };
        for (const auto& [key, resource] : resources_) {
            if (key.starts_with(type + "/")) add(resource);
        }
        return bundle + "]}";
    }

    std::map<std::string, std::string> resources_;
    std::size_t next_id_ = 0;
    std::size_t gathered_ = 0;
    std::deque<std::pair<std::string, HttpResponse>> scripted_;
};

}  // namespace microcare::adapter::testing
