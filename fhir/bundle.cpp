#include "fhir/bundle.hpp"

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

bool IsId(std::string_view text) {
    if (text.empty() || text.size() > 64) return false;
    for (char c : text) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.')) {
            return false;
        }
    }
    return true;
}

std::string_view StripHistory(std::string_view reference) {
    auto at = reference.find("/_history/");
    return at == std::string_view::npos ? reference : reference.substr(0, at);
}

}  // namespace

std::string TypeIdOf(std::string_view reference) {
    if (reference.starts_with("urn:") || reference.starts_with("#")) return {};
    reference = StripHistory(reference);
    auto slash = reference.rfind('/');
    if (slash == std::string_view::npos || slash == 0) return {};
    std::string_view id = reference.substr(slash + 1);
    std::string_view head = reference.substr(0, slash);
    auto type_start = head.rfind('/');
    std::string_view type = type_start == std::string_view::npos ? head : head.substr(type_start + 1);
    if (!IsResourceTypeName(type) || !IsId(id)) return {};
    return std::string(type) + "/" + std::string(id);
}

BundleIndex::BundleIndex(Node root, IssueList& issues) {
    std::string_view type = root["resourceType"].String();
    if (!root.IsObject()) {
        issues.Error("structure", "", "expected a FHIR resource (a JSON object), found " +
                                          std::string(root.TypeName()));
        return;
    }
    if (type.empty()) {
        issues.Error("required", "resourceType", "missing: every FHIR resource names its type");
        return;
    }
    auto add = [&](Node resource, std::string_view full_url, std::string path) {
        BundleEntry entry;
        entry.index = entries_.size();
        entry.resource = resource;
        entry.full_url = full_url;
        entry.resource_type = resource["resourceType"].String();
        entry.id = resource["id"].String();
        entry.path = std::move(path);
        if (!full_url.empty()) by_full_url_.emplace(std::string(StripHistory(full_url)), entry.index);
        if (!entry.resource_type.empty() && !entry.id.empty()) {
            by_type_id_.emplace(std::string(entry.resource_type) + "/" + std::string(entry.id),
                                entry.index);
        }
        entries_.push_back(std::move(entry));
    };
    if (type != "Bundle") {
        add(root, {}, std::string(type));
        return;
    }
    is_bundle_ = true;
    bundle_type_ = root["type"].String();
    Node entries = root["entry"];
    if (entries.Exists() && !entries.IsArray()) {
        issues.Error("structure", "Bundle.entry", "must be an array");
        return;
    }
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        Node entry = entries[i];
        std::string path = "Bundle.entry[" + std::to_string(i) + "]";
        Node resource = entry["resource"];
        if (!resource.Exists()) continue;  // a transaction-response or delete entry
        if (!resource.IsObject() || resource["resourceType"].String().empty()) {
            issues.Error("structure", path + ".resource",
                         "must be a FHIR resource object with a resourceType");
            continue;
        }
        add(resource, entry["fullUrl"].String(), path + ".resource");
    }
}

const BundleEntry* BundleIndex::Resolve(std::string_view reference, const BundleEntry* from) const {
    if (reference.empty() || reference.starts_with("#")) return nullptr;
    std::string_view plain = StripHistory(reference);
    if (auto it = by_full_url_.find(std::string(plain)); it != by_full_url_.end()) {
        return &entries_[it->second];
    }
    if (plain.starts_with("urn:")) return nullptr;
    // A relative reference is relative to the base of the referring entry's fullUrl.
    bool relative = plain.find("://") == std::string_view::npos;
    if (relative && from != nullptr && from->full_url.find("://") != std::string_view::npos) {
        std::string_view base = from->full_url;
        std::string from_type_id = TypeIdOf(base);
        if (!from_type_id.empty() && base.ends_with(from_type_id)) {
            std::string absolute(base.substr(0, base.size() - from_type_id.size()));
            absolute += plain;
            if (auto it = by_full_url_.find(absolute); it != by_full_url_.end()) {
                return &entries_[it->second];
            }
        }
    }
    std::string type_id = TypeIdOf(plain);
    if (type_id.empty()) return nullptr;
    auto it = by_type_id_.find(type_id);
    return it == by_type_id_.end() ? nullptr : &entries_[it->second];
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
    std::string type_id = TypeIdOf(reference);
    return type_id.empty() ? std::string(reference) : type_id;
}

}  // namespace microcare::fhir
