#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace microcare::adapter {

// Where MicroCare may send a request. A URL that arrives in a request (a `response-url`, a
// `MessageHeader.source.endpoint`, a search's `next` link) is data, not a destination: it is
// brought to one normal form here and then compared with what the configuration names.

// `url` in normal form when it is an absolute http or https URL with a host and without user
// info or fragment: scheme and host in lower case, default port dropped, percent-encoding
// normalised, dot segments removed (a path that would climb above the root is refused).
// nullopt for anything else (`file:`, `gopher:`, `//host`, a relative path, ...).
std::optional<std::string> NormalHttpUrl(std::string_view url);

// Whether `reference` starts with a URI scheme (`name:` before any `/`, `?` or `#`), i.e. is
// absolute rather than a path relative to a base.
bool HasScheme(std::string_view reference);

// Whether `url` is `base` itself or below it: the same origin, and base's path followed in
// url's by nothing, `/` or `?`. Both in normal form. `https://ehr/fhir` covers
// `https://ehr/fhir/Patient/1` and `https://ehr/fhir?_getpages=x`, not `https://ehr/fhirx` or
// `https://ehr/admin`.
bool IsAtOrBelow(std::string_view url, std::string_view base);

// `value` percent-encoded for a query parameter: everything but RFC 3986's unreserved
// characters, so that a `&`, `#` or `+` in data never changes which parameters a search has.
std::string QueryValue(std::string_view value);

// Whether `url` (normal form) is at or below one of `allowed` (each in normal form).
bool IsAllowed(std::string_view url, const std::vector<std::string>& allowed);

}  // namespace microcare::adapter
