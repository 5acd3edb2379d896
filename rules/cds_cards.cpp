#include "rules/cds_cards.hpp"

#include "rules/plan_writer.hpp"

namespace microcare::rules {
namespace {

// The CDS Hooks limit on a summary is 140 characters; bytes are counted, which is stricter.
constexpr std::size_t kSummaryLimit = 140;

std::string Heading(const RuleSet& pack, const Finding& f) {
    const Rule& rule = pack.rules[f.rule];
    return "**Rule " + rule.id + ": " + rule.title + "** (" + std::string(ToString(f.severity)) +
           " contraindication)";
}

std::string FindingDetail(const RuleSet& pack, const Assessment& a, const Finding& f) {
    const Rule& rule = pack.rules[f.rule];
    std::string md = Heading(pack, f) + "\n\n" + rule.message + "\n\nEvidence:\n\n";
    for (const Evidence& e : f.evidence) md += "- " + DescribeEvidence(e, a.offset_minutes) + "\n";
    md += "\nWindows are measured from " + a.origin_source + " " +
          fhir::FormatInstant(a.origin, a.offset_minutes) + ".\n";
    for (std::string_view note : f.notes) md += "\nNote: " + std::string(note) + ".\n";
    md += "\n**Action:** " + rule.action + "\n\nRule pack " + pack.id + " " + pack.version +
          "; source: " + rule.source + ".";
    return md;
}

std::string Window(const Assessment& a, const PlannedActivity& p) {
    return fhir::FormatDate(p.start, a.offset_minutes) + " to " +
           fhir::FormatDate(p.end, a.offset_minutes);
}

Card AftercareCard(const RuleSet& pack, const Assessment& a) {
    Card card;
    card.indicator = Card::Indicator::kInfo;
    card.key = "aftercare";
    const PlannedActivity* check = nullptr;
    const PlannedActivity* next = nullptr;
    for (const PlannedActivity& p : a.activities) {
        if (p.kind == PlannedActivity::Kind::kCheck && check == nullptr) check = &p;
        if ((p.kind == PlannedActivity::Kind::kNextSession ||
             p.kind == PlannedActivity::Kind::kMaintenance) &&
            next == nullptr) {
            next = &p;
        }
    }
    card.summary =
        "Aftercare: session " + std::to_string(a.session_number) + " of " +
        std::to_string(a.series_length) +
        (next && next->kind == PlannedActivity::Kind::kMaintenance ? ", maintenance next" : "") +
        (next ? "; next " + Window(a, *next) : "");
    std::string md = "**Aftercare plan** (rule pack " + pack.id + " " + pack.version +
                     "), measured from " + a.origin_source + " " +
                     fhir::FormatInstant(a.origin, a.offset_minutes) + ":\n\n";
    md += "- Series: session " + std::to_string(a.session_number) + " of " +
          std::to_string(a.series_length) +
          (a.indication.empty() ? "" : " (indication " + a.indication + ")") + "\n";
    if (check) md += "- Check, " + Window(a, *check) + ": " + check->description + "\n";
    if (next) {
        md += "- " + std::string(next->status == "on-hold" ? "On hold: " : "") + "next session, " +
              Window(a, *next) + ": " + next->description + "\n";
    }
    for (const PlannedActivity& p : a.activities) {
        if (p.kind == PlannedActivity::Kind::kInstruction)
            md += "- Instruction: " + p.description + "\n";
    }
    for (const Finding& f : a.findings) {
        if (f.severity != Severity::kInfo) continue;
        md += "\n" + FindingDetail(pack, a, f) + "\n";
        for (const Evidence& e : f.evidence) card.evidence.emplace_back(e.resource->reference);
    }
    card.detail = std::move(md);
    card.summary = Shorten(card.summary, kSummaryLimit);
    return card;
}

}  // namespace

std::string_view ToString(Card::Indicator indicator) {
    switch (indicator) {
        case Card::Indicator::kCritical:
            return "critical";
        case Card::Indicator::kWarning:
            return "warning";
        case Card::Indicator::kInfo:
            break;
    }
    return "info";
}

std::string Shorten(std::string_view text, std::size_t limit) {
    if (text.size() < limit) return std::string(text);
    constexpr std::string_view kEllipsis = "\xE2\x80\xA6";
    std::size_t cut = limit - 1 - kEllipsis.size();
    // Back up to the first byte of a UTF-8 sequence.
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return std::string(text.substr(0, cut)) + std::string(kEllipsis);
}

std::vector<Card> BuildCards(const RuleSet& pack, const Assessment& a, const CardOptions& options) {
    std::vector<Card> cards;
    if (!a.applies) return cards;
    for (const Finding& f : a.findings) {
        if (f.severity == Severity::kInfo) continue;
        const Rule& rule = pack.rules[f.rule];
        Card card;
        const bool absolute = f.severity == Severity::kAbsolute;
        card.indicator = absolute ? Card::Indicator::kCritical : Card::Indicator::kWarning;
        card.key = rule.id;
        card.summary = Shorten(
            (absolute ? "Do not treat: " : "Review before treating: ") + rule.title, kSummaryLimit);
        card.detail = FindingDetail(pack, a, f);
        for (const Evidence& e : f.evidence) card.evidence.emplace_back(e.resource->reference);
        if (absolute && options.suggest_delete_order) {
            card.delete_order = std::string(a.encounter->reference);
        }
        cards.push_back(std::move(card));
    }
    cards.push_back(AftercareCard(pack, a));
    return cards;
}

}  // namespace microcare::rules
