#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapter/jobs/job_contract.hpp"
#include "fhir/date_time.hpp"
#include "fhir/issues.hpp"
#include "fhir/json.hpp"
#include "rules/pack_identity.hpp"

namespace microcare::adapter {

// A `$process-message` request, checked and turned into its job.
struct MessageTrigger {
    NewJob job;            // carries the MessageRecord with the response to store
    std::string response;  // the response message Bundle (JSON)
    bool is_async = false;
    // For a message that can never succeed: the fatal-error response message to answer with,
    // and no job.
    bool fatal = false;
};

struct MessageOptions {
    std::string endpoint_name;  // our MessageHeader.source.endpoint
    bool is_async = false;      // ?async=true
    std::string response_url;   // ?response-url=
    // Where asynchronous responses may go (normal form, see outbound_url.hpp): a response-url or
    // source endpoint elsewhere is refused when the message arrives.
    std::vector<std::string> allowed_response_urls;
};

// Checks a message Bundle. Structural problems (not a message Bundle, no MessageHeader, no
// ids, no Encounter focus) are reported to `issues` with their path and give nullopt.
std::optional<MessageTrigger> ParseProcessMessage(fhir::Node bundle, const MessageOptions& options,
                                                  fhir::Instant now, fhir::IssueList& issues);

// The CapabilityStatement served at [base]/metadata, naming the rule pack in force in
// implementation.description and, for machines, in the rule-pack extension (kRulePackExtension).
std::string CapabilityStatementJson(const std::string& base_url, fhir::Instant now,
                                    const rules::PackIdentity& pack);

// A complex extension with valueString parts "id", "version" and "sha256".
inline constexpr std::string_view kRulePackExtension =
    "https://microcare.example/fhir/StructureDefinition/rule-pack";

}  // namespace microcare::adapter
