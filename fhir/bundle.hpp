#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fhir/json.hpp"

namespace microcare::fhir {

// One resource of a Bundle (or a lone resource read as a one-entry record).
struct BundleEntry {
    std::size_t index = 0;
    Node resource;
    std::string_view full_url;
    std::string_view resource_type;
    std::string_view id;
    // For an absolute fullUrl, the server base relative references in it resolve against.
    std::string_view base;
    bool in_bundle = true;

    // "Bundle.entry[3].resource", or the resource type for a lone resource. Built on demand:
    // paths are only needed to report a problem.
    std::string Path() const;
};

// Indexes the entries of a Bundle of any type (collection, searchset, transaction, message,
// history, document) and resolves references between them: relative `Type/id` (also against an
// absolute fullUrl's base), absolute URLs, `urn:uuid:`/`urn:oid:` fullUrls, `_history` versions
// and contained `#id` resources.
class BundleIndex {
public:
    // `root` is a Bundle or a single resource. Structural problems are reported to `issues`.
    BundleIndex(Node root, IssueList& issues);
    // Resources read separately (the EHR's answers, each in a document of its own), indexed
    // as a collection Bundle holding them in this order would be: paths name them
    // `Bundle.entry[i].resource`.
    BundleIndex(const std::vector<Node>& resources, IssueList& issues);

    const std::vector<BundleEntry>& entries() const { return entries_; }
    bool is_bundle() const { return is_bundle_; }
    std::string_view bundle_type() const { return bundle_type_; }

    // The entry a reference points at, or nullptr. `from` is the entry holding the reference.
    const BundleEntry* Resolve(std::string_view reference, const BundleEntry* from = nullptr) const;

    // A contained resource of `from` named by `#id`; empty if absent.
    static Node ResolveContained(const BundleEntry& from, std::string_view reference);

    // How this record refers to the entry: `Type/id` when the resource has an id, else its
    // fullUrl. Stable identity for comparing subjects and for `implicated` references.
    static std::string ReferenceTo(const BundleEntry& entry);

    // The identity a reference stands for: the resolved entry's ReferenceTo, or the reference
    // itself reduced to `Type/id` when it names a server resource outside the record.
    std::string Identity(std::string_view reference, const BundleEntry* from = nullptr) const;

private:
    void Add(Node resource, std::string_view full_url, std::size_t index, bool in_bundle);
    bool IsKnownBase(std::string_view base) const;

    struct TypeIdHash {
        std::size_t operator()(const std::pair<std::string_view, std::string_view>& key) const {
            return std::hash<std::string_view>{}(key.first) * 31 +
                   std::hash<std::string_view>{}(key.second);
        }
    };

    // Keys are views into the parsed document, which outlives the index.
    std::vector<BundleEntry> entries_;
    std::unordered_map<std::string_view, std::size_t> by_full_url_;
    std::unordered_map<std::pair<std::string_view, std::string_view>, std::size_t, TypeIdHash>
        by_type_id_;
    std::string_view bundle_type_;
    bool is_bundle_ = false;
};

// `Type/id` on the server of the resource `reference` (held by `from`) names, when it is a
// `type` with a valid FHIR id: the resolved entry's own, or the reference's when it points
// outside the Bundle. Empty otherwise: what becomes part of a URL on the EHR is checked here.
std::string ServerReference(const BundleIndex& index, std::string_view reference,
                            const BundleEntry* from, std::string_view type);

// The type and id of a relative or absolute RESTful reference, without `_history`; empty
// views otherwise.
std::pair<std::string_view, std::string_view> SplitTypeId(std::string_view reference);

// `Type/id` from a relative or absolute RESTful reference, without `_history`; empty otherwise.
std::string TypeIdOf(std::string_view reference);

}  // namespace microcare::fhir
