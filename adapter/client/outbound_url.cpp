#include "adapter/client/outbound_url.hpp"

#include <algorithm>
#include <boost/url/encode.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>
#include <boost/url/url.hpp>
#include <cctype>

namespace microcare::adapter {
namespace {

namespace urls = boost::urls;

bool HasDotSegment(std::string_view path) {
    while (!path.empty()) {
        if (path.front() == '/') path.remove_prefix(1);
        const auto end = path.find('/');
        const std::string_view segment = path.substr(0, end);
        if (segment == "." || segment == "..") return true;
        if (end == std::string_view::npos) break;
        path.remove_prefix(end);
    }
    return false;
}

// The URL up to the end of its path: scheme, authority and path.
std::string_view OriginAndPath(std::string_view url) { return url.substr(0, url.find('?')); }

}  // namespace

std::optional<std::string> NormalHttpUrl(std::string_view text) {
    auto parsed = urls::parse_absolute_uri(text);
    if (!parsed) return std::nullopt;
    urls::url url(*parsed);
    url.normalize();
    const bool http = url.scheme_id() == urls::scheme::http;
    const bool https = url.scheme_id() == urls::scheme::https;
    if (!http && !https) return std::nullopt;
    if (!url.has_authority() || url.encoded_host().empty() || url.has_userinfo() ||
        url.has_fragment()) {
        return std::nullopt;
    }
    // normalize() keeps the `..` it cannot resolve (`https://ehr/../x`); such a URL is refused
    // rather than guessed at, as a server might resolve it differently.
    if (HasDotSegment(url.encoded_path())) return std::nullopt;
    if (url.has_port() && (url.port().empty() || (http && url.port_number() == 80) ||
                           (https && url.port_number() == 443))) {
        url.remove_port();
    }
    return std::string(url.buffer());
}

bool HasScheme(std::string_view reference) {
    const auto colon = reference.find(':');
    if (colon == 0 || colon == std::string_view::npos) return false;
    if (reference.find_first_of("/?#") < colon) return false;
    if (!std::isalpha(static_cast<unsigned char>(reference.front()))) return false;
    return std::all_of(reference.begin(), reference.begin() + colon, [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
    });
}

bool IsAtOrBelow(std::string_view url, std::string_view base) {
    base = OriginAndPath(base);
    while (!base.empty() && base.back() == '/') base.remove_suffix(1);
    if (!url.starts_with(base)) return false;
    // The origin must end where base's does: `https://ehr` is not a prefix of `https://ehr.evil`.
    const std::string_view rest = url.substr(base.size());
    return rest.empty() || rest.front() == '/' || rest.front() == '?';
}

std::string QueryValue(std::string_view value) {
    return urls::encode(value, urls::unreserved_chars);
}

bool IsAllowed(std::string_view url, const std::vector<std::string>& allowed) {
    for (const std::string& prefix : allowed) {
        if (IsAtOrBelow(url, prefix)) return true;
    }
    return false;
}

}  // namespace microcare::adapter
