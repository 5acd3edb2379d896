#include <charconv>
#include <ctime>

#include "adapter/client/http_client.hpp"

namespace microcare::adapter {

std::optional<std::string> HttpResponse::Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
        if (key == name) return value;
    }
    return std::nullopt;
}

std::optional<std::chrono::milliseconds> HttpResponse::RetryAfter(
    std::chrono::system_clock::time_point now) const {
    auto value = Header("retry-after");
    if (!value) return std::nullopt;
    long long seconds = 0;
    auto [end, ec] = std::from_chars(value->data(), value->data() + value->size(), seconds);
    if (ec == std::errc() && end == value->data() + value->size() && seconds >= 0) {
        return std::chrono::seconds(seconds);
    }
    auto at = ParseHttpDate(*value);
    if (!at) return std::nullopt;
    if (*at <= now) return std::chrono::milliseconds(0);
    return std::chrono::duration_cast<std::chrono::milliseconds>(*at - now);
}

std::optional<std::chrono::system_clock::time_point> HttpResponse::Date() const {
    auto value = Header("date");
    if (!value) return std::nullopt;
    return ParseHttpDate(*value);
}

std::optional<std::chrono::system_clock::time_point> ParseHttpDate(const std::string& text) {
    // An HTTP-date (IMF-fixdate): "Sun, 06 Nov 1994 08:49:37 GMT".
    std::tm tm{};
    if (strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm) == nullptr) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

}  // namespace microcare::adapter
