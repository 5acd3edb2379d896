#include "rules/outcome_diff.hpp"

#include <map>

namespace microcare::rules {
namespace {

using Kind = OutcomeChange::Kind;

// Findings by "rule@evidence": one entry per resource a rule fires on, so that a rule that
// gains or loses one piece of evidence shows as exactly that.
std::map<std::string, Severity> FindingsOf(const RuleSet& pack, const Assessment& assessment) {
    std::map<std::string, Severity> out;
    for (const Finding& finding : assessment.findings) {
        const std::string& rule = pack.rules[finding.rule].id;
        auto note = [&](std::string subject) {
            auto [it, added] = out.emplace(std::move(subject), finding.severity);
            if (!added && it->second < finding.severity) it->second = finding.severity;
        };
        if (finding.evidence.empty()) note(rule);
        for (const Evidence& evidence : finding.evidence) {
            note(rule + "@" + std::string(evidence.resource->reference));
        }
    }
    return out;
}

std::string ActivityName(const PlannedActivity& activity) {
    switch (activity.kind) {
        case PlannedActivity::Kind::kCheck:
            return "check";
        case PlannedActivity::Kind::kNextSession:
            return "next-session";
        case PlannedActivity::Kind::kMaintenance:
            return "maintenance";
        case PlannedActivity::Kind::kInstruction:
            return "instruction:" + activity.instruction;
    }
    return "activity";
}

// What a person compares: the status and the window, in the encounter's own offset.
struct Scheduled {
    std::string when;
    std::string description;
};

std::map<std::string, Scheduled> ActivitiesOf(const Assessment& assessment) {
    std::map<std::string, Scheduled> out;
    for (const PlannedActivity& activity : assessment.activities) {
        out[ActivityName(activity)] = {
            activity.status + " " + fhir::FormatInstant(activity.start, assessment.offset_minutes) +
                " to " + fhir::FormatInstant(activity.end, assessment.offset_minutes),
            activity.description};
    }
    return out;
}

// Walks two maps in key order, calling `added`, `removed` or `both` for each key.
template <typename Value, typename Added, typename Removed, typename Both>
void Merge(const std::map<std::string, Value>& before, const std::map<std::string, Value>& after,
           Added added, Removed removed, Both both) {
    auto b = before.begin();
    auto a = after.begin();
    while (b != before.end() || a != after.end()) {
        if (a == after.end() || (b != before.end() && b->first < a->first)) {
            removed(b->first, b->second);
            ++b;
        } else if (b == before.end() || a->first < b->first) {
            added(a->first, a->second);
            ++a;
        } else {
            both(a->first, b->second, a->second);
            ++a;
            ++b;
        }
    }
}

std::string Applicability(const Assessment& assessment) {
    return assessment.applies ? "assessed" : "not assessed: " + assessment.explanation;
}

}  // namespace

std::vector<OutcomeChange> DiffOutcomes(const RuleSet& before_pack, const Assessment& before,
                                        const RuleSet& after_pack, const Assessment& after) {
    std::vector<OutcomeChange> changes;
    if (before.applies != after.applies) {
        changes.push_back(
            {Kind::kApplies, "encounter", Applicability(before), Applicability(after)});
    }
    Merge(
        FindingsOf(before_pack, before), FindingsOf(after_pack, after),
        [&](const std::string& subject, Severity severity) {
            changes.push_back({Kind::kFindingAdded, subject, "", std::string(ToString(severity))});
        },
        [&](const std::string& subject, Severity severity) {
            changes.push_back(
                {Kind::kFindingRemoved, subject, std::string(ToString(severity)), ""});
        },
        [&](const std::string& subject, Severity was, Severity now) {
            if (was == now) return;
            changes.push_back({Kind::kSeverityChanged, subject, std::string(ToString(was)),
                               std::string(ToString(now))});
        });
    Merge(
        ActivitiesOf(before), ActivitiesOf(after),
        [&](const std::string& subject, const Scheduled& s) {
            changes.push_back({Kind::kActivityAdded, subject, "", s.when});
        },
        [&](const std::string& subject, const Scheduled& s) {
            changes.push_back({Kind::kActivityRemoved, subject, s.when, ""});
        },
        [&](const std::string& subject, const Scheduled& was, const Scheduled& now) {
            if (was.when == now.when && was.description == now.description) return;
            // The same window with other words ("Session 2 of 4"): say so rather than print
            // two equal lines.
            const bool text_only = was.when == now.when;
            changes.push_back({Kind::kActivityChanged, subject, was.when,
                               now.when + (text_only ? " (text changed)" : "")});
        });
    return changes;
}

std::string_view ToString(OutcomeChange::Kind kind) {
    switch (kind) {
        case Kind::kApplies:
            return "applies";
        case Kind::kFindingAdded:
            return "finding-added";
        case Kind::kFindingRemoved:
            return "finding-removed";
        case Kind::kSeverityChanged:
            return "severity-changed";
        case Kind::kActivityAdded:
            return "activity-added";
        case Kind::kActivityRemoved:
            return "activity-removed";
        case Kind::kActivityChanged:
            return "activity-changed";
    }
    return "applies";
}

std::string Describe(const OutcomeChange& change) {
    const bool added = change.kind == Kind::kFindingAdded || change.kind == Kind::kActivityAdded;
    const bool removed =
        change.kind == Kind::kFindingRemoved || change.kind == Kind::kActivityRemoved;
    const bool finding = change.kind == Kind::kFindingAdded ||
                         change.kind == Kind::kFindingRemoved ||
                         change.kind == Kind::kSeverityChanged;
    const std::string what = change.kind == Kind::kApplies ? ""
                             : finding                     ? "finding "
                                                           : "activity ";
    const std::string sign = added ? "+ " : removed ? "- " : "~ ";
    const std::string values = added     ? change.after
                               : removed ? change.before
                                         : change.before + " -> " + change.after;
    return sign + what + change.subject + ": " + values;
}

}  // namespace microcare::rules
