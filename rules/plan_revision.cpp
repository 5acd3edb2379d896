#include "rules/plan_revision.hpp"

#include "rules/plan_writer.hpp"

namespace microcare::rules {
namespace {

using fhir::OnEhr;

const WrittenResource* Find(const std::vector<WrittenResource>& written, std::string_view type,
                            std::string_view identifier) {
    for (const WrittenResource& w : written) {
        if (w.resource_type == type && w.identifier == identifier) return &w;
    }
    return nullptr;
}

// A status after which MicroCare leaves a resource alone: it was retired already, or a
// clinician closed it (a Task done or refused, something marked entered in error).
bool Closed(const WrittenResource& w) {
    return w.status == "cancelled" || w.status == "entered-in-error" || w.status == "completed" ||
           w.status == "rejected" || w.status == "failed";
}

std::string PackName(const RuleSet& pack) {
    return pack.id + " " + pack.version +
           (pack.sha256.empty() ? "" : " (sha256 " + pack.sha256.substr(0, 12) + ")");
}

// What a retired resource says: by which pack, and why (`why`, or the re-assessment's reason).
std::string RetireNote(std::string_view done, const RuleSet& pack, std::string_view why,
                       std::string_view by_default) {
    return std::string(done) + " by rule pack " + PackName(pack) + ": " +
           std::string(why.empty() ? by_default : why) + ".";
}

// Decides how one resource of the assessment is written, against what was written before.
Change Place(const WrittenResource* w, const std::string& digest, OnEhr& on_ehr,
             std::string& detail) {
    if (w == nullptr) {
        on_ehr = {OnEhr::Write::kCreate, {}, {}, {}, digest};
        return Change::kCreated;
    }
    on_ehr = {OnEhr::Write::kUpdate, w->id, w->version_id, w->first_written, digest};
    if (w->status == "cancelled") {
        // Found again after it was retired: found now, not when first written.
        on_ehr.first_written.clear();
        detail = "reinstated";
        return Change::kUpdated;
    }
    if (w->digest == digest) {
        on_ehr.write = OnEhr::Write::kNone;
        return Change::kUnchanged;
    }
    return Change::kUpdated;
}

}  // namespace

std::optional<WrittenResource> ReadWritten(fhir::Node resource) {
    WrittenResource w;
    const fhir::Node identifiers = resource["identifier"];
    for (std::size_t i = 0; identifiers.IsArray() && i < identifiers.Size(); ++i) {
        if (identifiers[i]["system"].String() == kIdentifierSystem) {
            w.identifier = std::string(identifiers[i]["value"].String());
        }
    }
    if (w.identifier.empty()) return std::nullopt;
    w.resource_type = std::string(resource["resourceType"].String());
    w.id = std::string(resource["id"].String());
    w.version_id = std::string(resource["meta"]["versionId"].String());
    w.status = std::string(resource["status"].String());
    w.severity = std::string(resource["severity"].String());
    for (const char* time : {"created", "identifiedDateTime", "authoredOn"}) {
        if (resource[time].IsString()) w.first_written = std::string(resource[time].String());
    }
    const fhir::Node tags = resource["meta"]["tag"];
    for (std::size_t i = 0; tags.IsArray() && i < tags.Size(); ++i) {
        if (tags[i]["system"].String() == fhir::kDigestTagSystem) {
            w.digest = std::string(tags[i]["code"].String());
        }
    }
    w.resource = resource;
    return w;
}

std::string_view ToString(Change change) {
    switch (change) {
        case Change::kCreated:
            return "created";
        case Change::kUpdated:
            return "updated";
        case Change::kRetired:
            return "retired";
        case Change::kUnchanged:
            break;
    }
    return "unchanged";
}

std::vector<ResourceChange> ReviseTransaction(const RuleSet& pack, fhir::TransactionValue& value,
                                              const std::vector<WrittenResource>& written,
                                              std::string_view why_retired) {
    std::vector<ResourceChange> changes;
    const std::string& prefix = value.key_prefix;
    if (prefix.empty()) return changes;
    std::vector<WrittenResource> mine;
    for (const WrittenResource& w : written) {
        if (w.identifier.starts_with(prefix)) mine.push_back(w);
    }

    // The DetectedIssues first: the CarePlan and the Task refer to them.
    std::vector<ResourceChange> issue_changes;
    for (std::size_t i = 0; i < value.issues.size(); ++i) {
        fhir::DetectedIssueValue& issue = value.issues[i];
        const WrittenResource* w = Find(mine, "DetectedIssue", issue.identifier.value);
        ResourceChange change{"DetectedIssue", issue.identifier.value, Change::kCreated, {}};
        if (w != nullptr && w->status == "entered-in-error") {
            // A clinician's verdict on MicroCare's finding: not MicroCare's to overturn.
            issue.on_ehr = {OnEhr::Write::kNone, w->id, w->version_id, w->first_written, {}};
            change.change = Change::kUnchanged;
            change.detail = "entered-in-error, left alone";
        } else {
            change.change = Place(w, fhir::IssueDigest(value, i), issue.on_ehr, change.detail);
        }
        if (change.change == Change::kUpdated && w->severity != issue.severity) {
            issue.status = "amended";
            change.detail = "severity " + w->severity + " -> " + issue.severity;
        } else if (change.change == Change::kUpdated && w->status == "amended") {
            issue.status = "amended";  // once amended, the record says so
        }
        issue_changes.push_back(std::move(change));
    }
    for (const WrittenResource& w : mine) {
        if (w.resource_type != "DetectedIssue" || Closed(w)) continue;
        bool wanted = false;
        for (const fhir::DetectedIssueValue& issue : value.issues)
            wanted = wanted || issue.identifier.value == w.identifier;
        if (wanted) continue;
        value.retired.push_back({"DetectedIssue", w.id, w.version_id, w.resource,
                                 RetireNote("Retired", pack, why_retired,
                                            "on re-assessment the rule no longer finds this")});
        issue_changes.push_back({"DetectedIssue", w.identifier, Change::kRetired, {}});
    }

    ResourceChange task_change;
    const std::string task_id = prefix + "task";
    const WrittenResource* written_task = Find(mine, "Task", task_id);
    if (value.task) {
        task_change = {"Task", task_id, Change::kCreated, {}};
        const std::string digest = fhir::TaskDigest(value);
        if (written_task != nullptr && Closed(*written_task) &&
            written_task->status != "cancelled" && written_task->digest == digest) {
            // Reviewed (or refused) for these very reasons: the review stands.
            value.task->on_ehr = {OnEhr::Write::kNone,
                                  written_task->id,
                                  written_task->version_id,
                                  written_task->first_written,
                                  {}};
            task_change.change = Change::kUnchanged;
        } else {
            task_change.change =
                Place(written_task, digest, value.task->on_ehr, task_change.detail);
            if (task_change.change == Change::kUpdated && task_change.detail.empty())
                task_change.detail = "reason changed";
        }
    } else if (written_task != nullptr && !Closed(*written_task)) {
        value.retired.push_back({"Task", written_task->id, written_task->version_id,
                                 written_task->resource,
                                 RetireNote("Cancelled", pack, why_retired,
                                            "on re-assessment nothing is left to review")});
        task_change = {"Task", task_id, Change::kRetired, {}};
    }

    // The lock: written whenever anything is, against the version read. The CarePlan where
    // there is one; before a visit (no CarePlan) the Task, where there is one.
    if (value.care_plan) {
        const std::string& plan_id = value.care_plan->identifier.value;
        ResourceChange plan_change{"CarePlan", plan_id, Change::kCreated, {}};
        const WrittenResource* written_plan = Find(mine, "CarePlan", plan_id);
        plan_change.change = Place(written_plan, fhir::CarePlanDigest(value),
                                   value.care_plan->on_ehr, plan_change.detail);
        if (plan_change.change == Change::kUnchanged && value.HasWrites()) {
            value.care_plan->on_ehr.write = OnEhr::Write::kUpdate;
            plan_change.change = Change::kUpdated;
            plan_change.detail = "same content, rewritten to guard the revision";
        }
        changes.push_back(std::move(plan_change));
    } else if (value.task && task_change.change == Change::kUnchanged &&
               value.task->on_ehr.write == OnEhr::Write::kNone && !Closed(*written_task) &&
               value.HasWrites()) {
        value.task->on_ehr.write = OnEhr::Write::kUpdate;
        task_change.change = Change::kUpdated;
        task_change.detail = "same content, rewritten to guard the revision";
    }
    for (ResourceChange& change : issue_changes) changes.push_back(std::move(change));
    if (!task_change.identifier.empty()) changes.push_back(std::move(task_change));
    return changes;
}

std::string DescribeChanges(const std::vector<ResourceChange>& changes) {
    std::string text;
    for (const ResourceChange& c : changes) {
        text += (text.empty() ? "" : "; ") + c.resource_type + " " + c.identifier + " " +
                std::string(ToString(c.change)) + (c.detail.empty() ? "" : " (" + c.detail + ")");
    }
    return text;
}

}  // namespace microcare::rules
