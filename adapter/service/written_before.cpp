#include "adapter/service/written_before.hpp"

#include "adapter/client/outbound_url.hpp"
#include "rules/plan_writer.hpp"

namespace microcare::adapter {

std::vector<std::string> WrittenBeforeQueries(std::string_view patient, std::string_view prefix,
                                              bool care_plan) {
    const std::string system(rules::kIdentifierSystem);
    std::vector<std::string> queries;
    if (care_plan) {
        queries.push_back("CarePlan?subject=" + QueryValue(patient) + "&identifier=" +
                          QueryValue(system + "|" + std::string(prefix) + "careplan"));
    }
    queries.push_back("DetectedIssue?patient=" + QueryValue(patient) +
                      "&identifier=" + QueryValue(system + "|"));
    queries.push_back("Task?identifier=" + QueryValue(system + "|" + std::string(prefix) + "task"));
    return queries;
}

WrittenBefore WrittenBeforeFrom(std::vector<std::string> queries,
                                std::vector<SearchResult> searches) {
    WrittenBefore before{std::move(queries), std::move(searches), {}};
    for (const SearchResult& search : before.searches) {
        for (const fhir::Node& resource : search.resources) {
            if (auto written = rules::ReadWritten(resource))
                before.resources.push_back(std::move(*written));
        }
    }
    return before;
}

}  // namespace microcare::adapter
