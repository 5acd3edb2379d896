#include "adapter/cds/cds_response.hpp"

#include "fhir/json.hpp"
#include "fhir/transaction_builder.hpp"

namespace microcare::adapter {
namespace {

struct OverrideReason {
    std::string_view code;
    std::string_view display;
};
constexpr OverrideReason kOverrideReasons[] = {
    {"reviewed-not-applicable", "Reviewed: does not apply to this patient"},
    {"record-outdated", "The record is out of date; confirmed with the patient"},
    {"treatment-area-clear", "Outside the treatment area"},
    {"benefit-outweighs-risk", "Clinician judges the benefit to outweigh the risk"},
};

// The pack's label for people, its identity (the sha256 of what was loaded) for machines: a
// card names exactly the rules it came from, as the CarePlan's tag does.
void Source(fhir::JsonWriter& out, const rules::RuleSet& pack, const rules::Card& card) {
    out.Key("source");
    out.StartObject();
    out.Field("label", "MicroCare: " + pack.title + " (" + pack.id + " " + pack.version + ")");
    out.Key("topic");
    out.StartObject();
    out.Field("system", "https://microcare.example/fhir/CodeSystem/rule");
    out.Field("code", card.key);
    out.EndObject();
    out.EndObject();
    out.Key("extension");
    out.StartObject();
    out.Key("https://microcare.example/cds/rule-pack");
    out.StartObject();
    out.Field("id", pack.id);
    out.Field("version", pack.version);
    out.Field("sha256", pack.sha256);
    out.EndObject();
    out.EndObject();
}

void OverrideReasons(fhir::JsonWriter& out) {
    out.Key("overrideReasons");
    out.StartArray();
    for (const OverrideReason& reason : kOverrideReasons) {
        out.StartObject();
        out.Field("system", kOverrideReasonSystem);
        out.Field("code", reason.code);
        out.Field("display", reason.display);
        out.EndObject();
    }
    out.EndArray();
}

void Suggestions(fhir::JsonWriter& out, const std::string& card_uuid, const rules::Card& card) {
    out.Key("suggestions");
    out.StartArray();
    out.StartObject();
    out.Field("label", "Remove the draft order " + *card.delete_order);
    out.Field("uuid", CardUuid(card_uuid, *card.delete_order, "delete"));
    out.Key("isRecommended");
    out.Bool(true);
    out.Key("actions");
    out.StartArray();
    out.StartObject();
    out.Field("type", "delete");
    out.Field("description", "Do not sign this order: an absolute contraindication was found.");
    out.Key("resourceId");
    out.StartArray();
    out.String(*card.delete_order);
    out.EndArray();
    out.EndObject();
    out.EndArray();
    out.EndObject();
    out.EndArray();
    // The specification requires it whenever suggestions are given.
    out.Field("selectionBehavior", "at-most-one");
}

}  // namespace

std::string CardUuid(std::string_view hook_instance, std::string_view treatment,
                     std::string_view key) {
    return fhir::DeterministicUuid(std::string(hook_instance) + "\n" + std::string(treatment) +
                                   "\n" + std::string(key));
}

std::string CardsJson(const rules::RuleSet& pack, std::string_view hook_instance,
                      const std::vector<CardSet>& sets, std::vector<IssuedCard>& issued) {
    fhir::JsonWriter out;
    out.StartObject();
    out.Key("cards");
    out.StartArray();
    for (const CardSet& set : sets) {
        for (const rules::Card& card : set.cards) {
            const std::string uuid = CardUuid(hook_instance, set.treatment, card.key);
            out.StartObject();
            out.Field("uuid", uuid);
            out.Field("summary", card.summary);
            out.Field("detail", card.detail);
            out.Field("indicator", rules::ToString(card.indicator));
            Source(out, pack, card);
            if (card.indicator != rules::Card::Indicator::kInfo) OverrideReasons(out);
            if (card.delete_order) Suggestions(out, uuid, card);
            out.EndObject();
            issued.push_back(IssuedCard{uuid, card.key,
                                        std::string(rules::ToString(card.indicator)), set.treatment,
                                        card.evidence});
        }
    }
    out.EndArray();
    out.EndObject();
    return out.Take();
}

}  // namespace microcare::adapter
