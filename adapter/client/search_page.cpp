#include "adapter/client/search_page.hpp"

#include "adapter/client/outbound_url.hpp"

namespace microcare::adapter {

std::string ResolveAgainstBase(std::string_view base_url, std::string_view path_or_url) {
    // A scheme makes it absolute (`file:///x` stays `file:` and is refused when sent); a `://`
    // further on, as in `CarePlan?identifier=https://...|1`, is part of a relative reference.
    if (HasScheme(path_or_url)) return std::string(path_or_url);
    while (!base_url.empty() && base_url.back() == '/') base_url.remove_suffix(1);
    while (!path_or_url.empty() && path_or_url.front() == '/') path_or_url.remove_prefix(1);
    std::string url(base_url);
    url += '/';
    url += path_or_url;
    return url;
}

Result<SearchPage> ParseSearchPage(const std::string& body, std::string_view base_url) {
    while (!base_url.empty() && base_url.back() == '/') base_url.remove_suffix(1);
    fhir::IssueList issues;
    auto document = fhir::JsonDocument::Parse(body, issues);
    if (!document) return Error::kBadResponse;
    SearchPage page{std::move(*document), {}, {}};
    const fhir::Node bundle = page.document.Root();
    if (bundle["resourceType"].String() != "Bundle") return Error::kBadResponse;
    const fhir::Node entries = bundle["entry"];
    if (entries.Exists() && !entries.IsArray()) return Error::kBadResponse;
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        const fhir::Node resource = entries[i]["resource"];
        if (resource.IsObject()) page.resources.push_back(resource);
    }
    const fhir::Node links = bundle["link"];
    for (std::size_t i = 0; i < links.Size(); ++i) {
        if (links[i]["relation"].String() != "next" || !links[i]["url"].IsString()) continue;
        const std::string base = NormalHttpUrl(base_url).value_or(std::string(base_url));
        auto next = NormalHttpUrl(ResolveAgainstBase(base_url, links[i]["url"].String()));
        if (!next || !IsAtOrBelow(*next, base)) return Error::kBadResponse;
        page.next = std::move(*next);
        break;
    }
    return page;
}

}  // namespace microcare::adapter
