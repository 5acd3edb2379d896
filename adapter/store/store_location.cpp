#include "adapter/store/store_location.hpp"

namespace microcare::adapter {

bool IsPostgresUrl(std::string_view location) {
    return location.starts_with("postgresql://") || location.starts_with("postgres://");
}

std::string RedactStoreLocation(std::string_view url) {
    // scheme://[user[:password]@]host...: the password is between the first ':' after the
    // scheme's "//" and the '@' that ends the user info (a password may itself hold ':').
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos) {
        return std::string(url);
    }
    const auto authority_start = scheme_end + 3;
    const auto authority_end = url.find_first_of("/?", authority_start);
    const auto authority = url.substr(authority_start, authority_end == std::string_view::npos
                                                           ? std::string_view::npos
                                                           : authority_end - authority_start);
    const auto at = authority.rfind('@');
    std::string out(url.substr(0, authority_start));
    if (at != std::string_view::npos) {
        const auto userinfo = authority.substr(0, at);
        const auto colon = userinfo.find(':');
        out += colon == std::string_view::npos ? std::string(userinfo)
                                               : std::string(userinfo.substr(0, colon)) + ":***";
        out += authority.substr(at);
    } else {
        out += authority;
    }
    if (authority_end != std::string_view::npos) {
        std::string rest(url.substr(authority_end));
        // ?password=... in the query is as secret as the one in the user info.
        for (std::size_t pos = rest.find("password="); pos != std::string::npos;
             pos = rest.find("password=", pos + 1)) {
            if (pos > 0 && rest[pos - 1] != '?' && rest[pos - 1] != '&') {
                continue;  // e.g. passwordfile=... is not a password
            }
            const auto value_start = pos + 9;
            const auto value_end = rest.find('&', value_start);
            rest.replace(value_start,
                         (value_end == std::string::npos ? rest.size() : value_end) - value_start,
                         "***");
        }
        out += rest;
    }
    return out;
}

}  // namespace microcare::adapter
