// An EHR in memory for the worker's unit tests: reads, batches, searches and transactions
// answered from a map of resources, with answers that can be scripted per request. No sockets:
// the real HTTP path is covered by the integration suite against FakeEhr and Medplum.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "adapter/client/ehr.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter::testing {

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

    // The next request whose "METHOD path" starts with `request` gets `answer` instead.
    void Script(const std::string& request, HttpResponse answer) {
        scripted_.push_back({request, std::move(answer)});
    }
    // While set, every request gets this answer: the EHR is down.
    std::optional<HttpResponse> outage;
    // Runs before the answer to every request ("METHOD path"): lets a test act mid-job.
    std::function<void(const std::string& request)> on_request;

    std::vector<std::string> requests;      // "METHOD path", in order
    std::vector<std::string> transactions;  // bodies of the transactions posted
    std::vector<std::string> deliveries;    // bodies posted anywhere but the base

    std::size_t CarePlans() const { return care_plans_.size(); }

    boost::asio::awaitable<Result<HttpResponse>> Get(std::string path) override {
        if (auto scripted = Seen("GET " + path)) co_return *scripted;
        auto it = resources_.find(path);
        if (it == resources_.end()) co_return Answer(404, R"({"resourceType":"OperationOutcome"})");
        co_return Answer(200, it->second);
    }

    boost::asio::awaitable<Result<HttpResponse>> Post(std::string path, std::string body) override {
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
        // Conditional creates on the identifier: a second post of the same plan makes nothing.
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            const fhir::Node resource = entries[i]["resource"];
            if (resource["resourceType"].String() != "CarePlan") continue;
            care_plans_[std::string(resource["identifier"][0]["value"].String())] =
                fhir::Serialize(resource);
        }
        co_return Answer(200, R"({"resourceType":"Bundle","type":"transaction-response"})");
    }

    boost::asio::awaitable<Result<SearchResult>> SearchAll(std::string query) override {
        requests.push_back("GET " + query);
        SearchResult result;
        const std::string type = query.substr(0, query.find('?'));
        fhir::IssueList issues;
        result.pages.push_back(*fhir::JsonDocument::Parse(Searchset(type), issues));
        const fhir::Node entries = result.pages.back().Root()["entry"];
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            result.resources.push_back(entries[i]["resource"]);
        }
        result.page_count = 1;
        co_return result;
    }

private:
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

    std::string Searchset(const std::string& type) const {
        std::string bundle = R"({"resourceType":"Bundle","type":"searchset","entry":[)";
        bool first = true;
        auto add = [&](const std::string& resource) {
            bundle += (first ? "" : ",") + std::string(R"({"resource":)") + resource + "}";
            first = false;
        };
        if (type == "CarePlan") {
            for (const auto& [id, plan] : care_plans_) add(plan);
        }
        for (const auto& [key, resource] : resources_) {
            if (key.starts_with(type + "/")) add(resource);
        }
        return bundle + "]}";
    }

    std::map<std::string, std::string> resources_;
    std::map<std::string, std::string> care_plans_;  // by identifier value
    std::deque<std::pair<std::string, HttpResponse>> scripted_;
};

}  // namespace microcare::adapter::testing
