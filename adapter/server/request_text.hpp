#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace microcare::adapter {

// What every route reads from a request's headers, in one place.

// Request text (a path, a header, an id) made safe to put in an answer, a log line or the
// audit trail: bytes outside printable ASCII are percent-escaped, so invalid UTF-8 and control
// characters never get through, and long text is cut.
std::string Printable(std::string_view text, std::size_t max = 256);

// The token of `Authorization: Bearer <token>`. The scheme matches in any case (RFC 9110
// section 11.1); one or more spaces separate it from the token.
std::optional<std::string_view> BearerToken(std::string_view header);

// Whether a Content-Type is JSON (application/json or application/fhir+json, any parameters).
bool IsJson(std::string_view content_type);

}  // namespace microcare::adapter
