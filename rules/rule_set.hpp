#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "fhir/date_time.hpp"
#include "fhir/patient_record.hpp"
#include "rules/code_index.hpp"
#include "rules/pack_identity.hpp"

namespace microcare::rules {

// Ordered: a cap or downgrade only ever lowers a severity.
enum class Severity { kInfo, kRelative, kAbsolute };

std::string_view ToString(Severity severity);
// DetectedIssue.severity on the wire: absolute → high, relative → moderate, info → low.
std::string_view WireSeverity(Severity severity);

struct CodingSpec {
    std::string system;
    std::string code;
    std::string display;
};

struct ValueSet {
    std::string id;
    std::string title;
};

struct StatusSets {
    std::vector<std::string> ongoing;
    std::vector<std::string> past;
};

// A look-back: a calendar duration, or no limit at all.
struct Window {
    fhir::CalendarDuration duration;
    bool unlimited = false;
};

struct QuantityTest {
    std::string comparator;  // > >= < <=
    double value = 0;
    std::string unit;
};

// One way a rule can be evidenced (config/README.md, "Criteria").
struct Criterion {
    std::string path;  // where it was defined in the pack, for messages
    std::array<bool, fhir::kResourceTypeCount> types{};
    std::optional<std::size_t> value_set;
    std::optional<std::vector<std::string>> ongoing;  // overrides statusDefaults
    std::optional<std::vector<std::string>> past;
    std::optional<Window> look_back;
    std::optional<fhir::CalendarDuration> onset_within;
    std::optional<std::size_t> value_value_set;
    std::optional<QuantityTest> quantity;
    std::optional<std::size_t> unless_later;  // index into RuleSet::criteria
    std::optional<fhir::CalendarDuration> age_under;

    bool Accepts(fhir::ResourceType type) const { return types[static_cast<std::size_t>(type)]; }
};

// A criterion is evidence for a rule, a condition of a rule's downgrade, or the `unlessLater`
// of another criterion.
struct CriterionRole {
    enum class Kind { kEvidence, kDowngrade, kUnlessLater };
    Kind kind = Kind::kEvidence;
    std::size_t rule = 0;
};

struct Cap {
    fhir::ResourceType resource_type = fhir::ResourceType::kCondition;
    std::vector<std::string> status;
    std::vector<std::string> verification_status;
    Severity severity = Severity::kRelative;
    std::string note;
};

struct Downgrade {
    Severity severity = Severity::kInfo;
    std::vector<std::size_t> when;  // indexes into RuleSet::criteria
    std::string note;
};

struct Rule {
    std::string id;
    std::string title;
    Severity severity = Severity::kRelative;
    std::string issue_code;  // v3-ActCode
    bool treatment_area = false;
    std::vector<std::size_t> evidence;  // indexes into RuleSet::criteria
    // Indexes into RuleSet::rules. suppressed_by drops only the evidence resources those rules'
    // findings already show; excluded_by drops the whole finding when one of them is found, for
    // rules that state the other's absence ("diabetes, no sign of poor control").
    std::vector<std::size_t> suppressed_by;
    std::vector<std::size_t> excluded_by;
    std::optional<Downgrade> downgrade;
    std::string message;
    std::string action;
    std::string source;
};

struct Microneedling {
    std::size_t value_set = 0;
    std::vector<CodingSpec> require_text;
    std::vector<std::string> encounter_status;
    std::vector<std::string> procedure_status;
};

struct SeriesIndication {
    std::string id;
    std::size_t value_set = 0;
    int length = 3;
    fhir::CalendarDuration earliest;
    fhir::CalendarDuration latest;
};

struct Instruction {
    std::string id;
    fhir::CalendarDuration from;
    fhir::CalendarDuration until;
    std::string text;
};

struct Aftercare {
    CodingSpec check_code;
    fhir::CalendarDuration check_due;
    fhir::CalendarDuration check_earliest;
    fhir::CalendarDuration check_latest;
    std::string check_description;

    fhir::CalendarDuration count_within;
    int series_length = 3;
    fhir::CalendarDuration series_earliest;
    fhir::CalendarDuration series_latest;
    CodingSpec series_code;
    std::string series_description;
    std::vector<SeriesIndication> indications;

    CodingSpec maintenance_code;
    fhir::CalendarDuration maintenance_earliest;
    fhir::CalendarDuration maintenance_latest;
    std::string maintenance_description;

    CodingSpec education_code;
    std::vector<Instruction> instructions;
};

// A validated rule pack, ready to evaluate: immutable once loaded.
struct RuleSet {
    std::string id;
    std::string version;
    // Lower-case hex SHA-256 of the pack's canonical content, value-set files included (see
    // LoadRuleSet): id and version are what the author says, this is what was actually loaded.
    std::string sha256;
    std::string title;
    std::string publisher;
    std::string description;

    std::vector<ValueSet> value_sets;
    CodeIndex codes;
    std::array<StatusSets, fhir::kResourceTypeCount> status_defaults;
    std::vector<Cap> caps;
    Microneedling microneedling;
    std::vector<Criterion> criteria;
    std::vector<Rule> rules;
    Aftercare aftercare;

    // For each value set, the criteria whose code must be in it: the evaluator looks resources
    // up by the value sets they match instead of trying every rule on every resource.
    std::vector<std::vector<std::size_t>> criteria_by_value_set;
    // Criteria with no value set (age rules).
    std::vector<std::size_t> criteria_without_value_set;
    // For each criterion, what it is for.
    std::vector<CriterionRole> roles;

    PackIdentity Identity() const { return {id, version, sha256}; }

    const StatusSets& StatusDefaults(fhir::ResourceType type) const {
        return status_defaults[static_cast<std::size_t>(type)];
    }
};

}  // namespace microcare::rules
