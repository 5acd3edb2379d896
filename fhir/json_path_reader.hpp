#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>

#include "fhir/issues.hpp"
#include "fhir/json.hpp"

namespace microcare::fhir {

// The primitives of a reader of a JSON document that people write (the service config, a
// rule pack): every problem is collected with its JSON path, in the same words everywhere, and
// reading goes on so that one run names all the mistakes.
class JsonPathReader {
public:
    explicit JsonPathReader(IssueList& issues) : issues_(issues) {}

    void Error(const std::string& path, const std::string& message) {
        issues_.Error("invalid", path, message);
    }
    bool HasErrors() const { return issues_.HasErrors(); }

    // `path.key` (just `key` at the top) and `path[index]`.
    static std::string At(const std::string& path, std::string_view key);
    static std::string At(const std::string& path, std::size_t index);

    // Members of `object` not among `allowed` are errors that list the allowed ones: a typo
    // in a key must not silently leave a setting at its default.
    void Keys(Node object, const std::string& path,
              std::initializer_list<std::string_view> allowed);
    // Whether `node` is an object (an array); if not, an error, also when it is missing and
    // `required`.
    bool Object(Node node, const std::string& path, bool required = true);
    bool Array(Node node, const std::string& path, bool required = true);
    // A whole number from `min` to `max`, or nullopt and an error (nothing when missing).
    std::optional<long long> WholeNumber(Node node, const std::string& path, long long min,
                                         long long max, std::string_view unit = {});
    // true or false, or nullopt and an error (nothing when missing).
    std::optional<bool> Bool(Node node, const std::string& path);

private:
    IssueList& issues_;
};

}  // namespace microcare::fhir
