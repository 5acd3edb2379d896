#include "adapter/service/written_before.hpp"

#include "adapter/client/outbound_url.hpp"
#include "rules/plan_writer.hpp"

namespace microcare::adapter {

std::vector<std::string> WrittenBeforeQueries(std::string_view patient,
                                              std::string_view careplan_identifier) {
    const std::string system(rules::kIdentifierSystem);
    const std::string_view prefix =
        careplan_identifier.substr(0, careplan_identifier.rfind(':') + 1);
    return {
        "CarePlan?subject=" + QueryValue(patient) +
            "&identifier=" + QueryValue(system + "|" + std::string(careplan_identifier)),
        "DetectedIssue?patient=" + QueryValue(patient) + "&identifier=" + QueryValue(system + "|"),
        "Task?identifier=" + QueryValue(system + "|" + std::string(prefix) + "task"),
    };
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
