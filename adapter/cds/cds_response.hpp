#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "rules/cds_cards.hpp"
#include "rules/rule_set.hpp"

namespace microcare::adapter {

// The cards of one proposed treatment (or of the encounter that starts).
struct CardSet {
    std::string treatment;  // "Appointment/1", "ServiceRequest/2", "Encounter/3"
    std::vector<rules::Card> cards;
};

// A card as it was sent, for the feedback that names it by uuid and for the audit trail.
struct IssuedCard {
    std::string uuid;
    std::string key;  // rule id or "aftercare"
    std::string indicator;
    std::string treatment;
    std::vector<std::string> evidence;
};

// The override reasons critical and warning cards offer (CDS Hooks 2.0 `overrideReasons`).
inline constexpr std::string_view kOverrideReasonSystem =
    "https://microcare.example/fhir/CodeSystem/cds-override-reason";

// A card's uuid: derived from the hook instance, the treatment and the card's key (as
// fhir::DeterministicUuid derives every id MicroCare makes), so that the same request answered
// twice names its cards alike.
std::string CardUuid(std::string_view hook_instance, std::string_view treatment,
                     std::string_view key);

// {"cards": [...]} in CDS Hooks 2.0 form: uuid, summary, detail (markdown), indicator, source
// (the pack's label, its identity as the topic), overrideReasons on critical and warning cards,
// suggestions (with selectionBehavior) where a card carries one. `issued` gets each card.
std::string CardsJson(const rules::RuleSet& pack, std::string_view hook_instance,
                      const std::vector<CardSet>& sets, std::vector<IssuedCard>& issued);

}  // namespace microcare::adapter
