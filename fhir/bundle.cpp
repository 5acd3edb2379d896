#include "fhir/bundle.hpp"

#include "fhir/ids.hpp"

namespace microcare::fhir {
namespace {

bool IsResourceTypeName(std::string_view text) {
    if (text.empty() || text[0] < 'A' || text[0] > 'Z') return false;
    for (char c : text) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

std::string_view StripHistory(std::string_view reference) {
    auto at = reference.find("_history/");
    return at == std::string_view::npos || at == 0 || reference[at - 1] != '/'
               ? reference
               : reference.substr(0, at - 1);
}

}  // namespace

std::pair<std::string_view, std::string_view> SplitTypeId(std::string_view reference) {
    if (reference.starts_with("urn:") || reference.starts_with("#")) return {};
    reference = StripHistory(reference);
    auto slash = reference.rfind('/');
    if (slash == std::string_view::npos || slash == 0) return {};
    std::string_view id = reference.substr(slash + 1);
    std::string_view head = reference.substr(0, slash);
    auto type_start = head.rfind('/');
    std::string_view type =
        type_start == std::string_view::npos ? head : head.substr(type_start + 1);
    if (!IsResourceTypeName(type) || !IsFhirId(id)) return {};
    return {type, id};
}

std::string TypeIdOf(std::string_view reference) {
    auto [type, id] = SplitTypeId(reference);
    if (type.empty()) return {};
    return std::string(type) + "/" + std::string(id);
}

std::string BundleEntry::Path() const {
    if (!in_bundle) return std::string(resource_type);
    return "Bundle.entry[" + std::to_string(index) + "].resource";
}

void BundleIndex::Add(Node resource, std::string_view full_url, std::size_t index, bool in_bundle) {
    BundleEntry entry;
    entry.index = index;
    entry.in_bundle = in_bundle;
    entry.resource = resource;
    entry.full_url = full_url;
    entry.resource_type = resource["resourceType"].String();
    entry.id = resource["id"].String();
    if (full_url.find("://") != std::string_view::npos) {
        auto [url_type, url_id] = SplitTypeId(full_url);
        if (!url_type.empty()) {
            entry.base =
                full_url.substr(0, static_cast<std::size_t>(url_type.data() - full_url.data()));
        }
    }
    const std::size_t position = entries_.size();
    if (!full_url.empty()) by_full_url_.emplace(StripHistory(full_url), position);
    if (!entry.resource_type.empty() && !entry.id.empty()) {
        by_type_id_.emplace(std::make_pair(entry.resource_type, entry.id), position);
    }
    entries_.push_back(entry);
}

BundleIndex::BundleIndex(const std::vector<Node>& resources, IssueList& issues) {
    is_bundle_ = true;
    bundle_type_ = "collection";
    entries_.reserve(resources.size());
    for (std::size_t i = 0; i < resources.size(); ++i) {
        if (!resources[i].IsObject() || resources[i]["resourceType"].String().empty()) {
            issues.Error("structure", "Bundle.entry[" + std::to_string(i) + "].resource",
                         "must be a FHIR resource object with a resourceType");
            continue;
        }
        Add(resources[i], {}, i, true);
    }
}

BundleIndex::BundleIndex(Node root, IssueList& issues) {
    std::string_view type = root["resourceType"].String();
    if (!root.IsObject()) {
        issues.Error(
            "structure", "",
            "expected a FHIR resource (a JSON object), found " + std::string(root.TypeName()));
        return;
    }
    if (type.empty()) {
        issues.Error("required", "resourceType", "missing: every FHIR resource names its type");
        return;
    }
    if (type != "Bundle") {
        Add(root, {}, 0, false);
        return;
    }
    is_bundle_ = true;
    bundle_type_ = root["type"].String();
    Node entries = root["entry"];
    if (entries.Exists() && !entries.IsArray()) {
        issues.Error("structure", "Bundle.entry", "must be an array");
        return;
    }
    entries_.reserve(entries.Size());
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        Node entry = entries[i];
        Node resource = entry["resource"];
        if (!resource.Exists()) continue;  // a transaction-response or delete entry
        if (!resource.IsObject() || resource["resourceType"].String().empty()) {
            issues.Error("structure", "Bundle.entry[" + std::to_string(i) + "].resource",
                         "must be a FHIR resource object with a resourceType");
            continue;
        }
        Add(resource, entry["fullUrl"].String(), i, true);
    }
}

const BundleEntry* BundleIndex::Resolve(std::string_view reference, const BundleEntry* from) const {
    if (reference.empty() || reference.starts_with("#")) return nullptr;
    std::string_view plain = StripHistory(reference);
    if (auto it = by_full_url_.find(plain); it != by_full_url_.end()) {
        return &entries_[it->second];
    }
    if (plain.starts_with("urn:")) return nullptr;
    auto type_id = SplitTypeId(plain);
    if (type_id.first.empty()) return nullptr;
    auto it = by_type_id_.find(type_id);
    const BundleEntry* candidate = it == by_type_id_.end() ? nullptr : &entries_[it->second];
    if (candidate != nullptr && plain.find("://") != std::string_view::npos) {
        // An absolute URL names its server: an entry with the same type and id from another
        // server is someone else.
        const std::string_view base =
            plain.substr(0, static_cast<std::size_t>(type_id.first.data() - plain.data()));
        return candidate->base.empty() || candidate->base == base ? candidate : nullptr;
    }
    // A relative reference is relative to the base of the referring entry's fullUrl: prefer the
    // entry on that server when the record mixes servers.
    if (from == nullptr || from->base.empty() || plain.find("://") != std::string_view::npos) {
        return candidate;
    }
    const std::string_view base = from->base;
    if (candidate != nullptr && candidate->full_url.starts_with(base) &&
        candidate->full_url.substr(base.size()) == plain) {
        return candidate;
    }
    std::string absolute(base);
    absolute += plain;
    if (auto found = by_full_url_.find(absolute); found != by_full_url_.end()) {
        return &entries_[found->second];
    }
    return candidate;
}

Node BundleIndex::ResolveContained(const BundleEntry& from, std::string_view reference) {
    if (!reference.starts_with("#")) return Node();
    std::string_view id = reference.substr(1);
    Node contained = from.resource["contained"];
    for (std::size_t i = 0; i < contained.Size(); ++i) {
        if (contained[i]["id"].String() == id) return contained[i];
    }
    return Node();
}

std::string BundleIndex::ReferenceTo(const BundleEntry& entry) {
    if (!entry.id.empty() && !entry.resource_type.empty()) {
        return std::string(entry.resource_type) + "/" + std::string(entry.id);
    }
    return std::string(entry.full_url);
}

std::string BundleIndex::Identity(std::string_view reference, const BundleEntry* from) const {
    if (const BundleEntry* target = Resolve(reference, from)) return ReferenceTo(*target);
    // An absolute reference to a server the record comes from stands for `Type/id` there; one
    // to another server names someone else, so it keeps its full URL.
    if (reference.find("://") != std::string_view::npos) {
        auto [type, id] = SplitTypeId(reference);
        if (!type.empty() && !IsKnownBase(reference.substr(
                                 0, static_cast<std::size_t>(type.data() - reference.data())))) {
            return std::string(StripHistory(reference));
        }
    }
    std::string type_id = TypeIdOf(reference);
    return type_id.empty() ? std::string(reference) : type_id;
}

bool BundleIndex::IsKnownBase(std::string_view base) const {
    bool any = false;
    for (const BundleEntry& entry : entries_) {
        if (entry.base.empty()) continue;
        if (entry.base == base) return true;
        any = true;
    }
    // A record without absolute fullUrls gives no base to compare with: trust the reference.
    return !any;
}

std::string ServerReference(const BundleIndex& index, std::string_view reference,
                            const BundleEntry* from, std::string_view type) {
    if (const BundleEntry* target = index.Resolve(reference, from)) {
        if (target->resource_type != type || !IsFhirId(target->id)) return {};
        return std::string(type) + "/" + std::string(target->id);
    }
    auto [ref_type, id] = SplitTypeId(reference);
    if (ref_type != type || id.empty()) return {};
    return std::string(type) + "/" + std::string(id);
}

}  // namespace microcare::fhir
