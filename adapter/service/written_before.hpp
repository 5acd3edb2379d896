#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "adapter/client/ehr.hpp"
#include "rules/plan_revision.hpp"

namespace microcare::adapter {

// The searches that find what MicroCare wrote before for a treatment, by its own identifiers
// (`prefix`: rules::IdentifierPrefix): its CarePlan (by subject and identifier; none before a
// visit, `care_plan` false), the patient's DetectedIssues in MicroCare's identifier system (the
// rules that fired before need not be the ones that fire now), and its Task. The CarePlan query
// differs from the check after a write (the worker's CheckOne), so that each can be told apart
// in an EHR's log.
std::vector<std::string> WrittenBeforeQueries(std::string_view patient, std::string_view prefix,
                                              bool care_plan);

// What those searches found; `resources` view into `searches` (or into the document that
// answered them, when they were read in the record's batch).
struct WrittenBefore {
    std::vector<std::string> queries;
    std::vector<SearchResult> searches;
    std::vector<rules::WrittenResource> resources;
};

// The reading of `queries`, answered in `searches` in the same order.
WrittenBefore WrittenBeforeFrom(std::vector<std::string> queries,
                                std::vector<SearchResult> searches);

}  // namespace microcare::adapter
