#pragma once

#include <optional>
#include <string>
#include <vector>

#include "rules/assessment.hpp"
#include "rules/rule_set.hpp"

namespace microcare::rules {

// One CDS Hooks card as the rules see it: what to say and why, without the wire format (uuid,
// source, override reasons), which adapter/cds adds. Pure data from an Assessment, so a card
// and the DetectedIssue written for the same finding name the same rule and evidence.
struct Card {
    enum class Indicator { kInfo, kWarning, kCritical };
    Indicator indicator = Indicator::kInfo;
    // Stable within one proposed treatment: `rule-id` or `aftercare`. Feedback names the card
    // by the uuid the adapter derives from it.
    std::string key;
    std::string summary;                // plain text, under 140 characters
    std::string detail;                 // GitHub-flavoured markdown
    std::vector<std::string> evidence;  // `Type/id` of each evidence resource
    // order-sign on an absolute finding: the draft order to delete (`ServiceRequest/id`).
    std::optional<std::string> delete_order;
};

std::string_view ToString(Card::Indicator indicator);

struct CardOptions {
    // The proposed treatment is a draft order whose signing a critical card may stop.
    bool suggest_delete_order = false;
};

// Critical per absolute finding, warning per relative one, and one info card with the
// aftercare plan (series, next session window, check). None when the assessment does not apply
// (not microneedling). Low-severity findings stay in the info card's detail.
std::vector<Card> BuildCards(const RuleSet& pack, const Assessment& assessment,
                             const CardOptions& options = {});

// `text` cut to fewer than `limit` bytes on a UTF-8 boundary, with "…" when cut.
std::string Shorten(std::string_view text, std::size_t limit);

}  // namespace microcare::rules
