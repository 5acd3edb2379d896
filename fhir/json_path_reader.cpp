#include "fhir/json_path_reader.hpp"

#include <algorithm>

namespace microcare::fhir {

std::string JsonPathReader::At(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : path + "." + std::string(key);
}

std::string JsonPathReader::At(const std::string& path, std::size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

void JsonPathReader::Keys(Node object, const std::string& path,
                          std::initializer_list<std::string_view> allowed) {
    object.ForEachMember([&](std::string_view name, Node) {
        if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) return;
        std::string list;
        for (std::string_view key : allowed) list += (list.empty() ? "" : ", ") + std::string(key);
        Error(At(path, name), "unknown key; allowed here: " + list);
    });
}

bool JsonPathReader::Object(Node node, const std::string& path, bool required) {
    if (!node.Exists()) {
        if (required) Error(path, "missing");
        return false;
    }
    if (!node.IsObject()) {
        Error(path, "must be an object, found " + std::string(node.TypeName()));
        return false;
    }
    return true;
}

bool JsonPathReader::Array(Node node, const std::string& path, bool required) {
    if (!node.Exists()) {
        if (required) Error(path, "missing");
        return false;
    }
    if (!node.IsArray()) {
        Error(path, "must be an array, found " + std::string(node.TypeName()));
        return false;
    }
    return true;
}

std::optional<long long> JsonPathReader::WholeNumber(Node node, const std::string& path,
                                                     long long min, long long max,
                                                     std::string_view unit) {
    if (!node.Exists()) return std::nullopt;
    auto value = node.Number();
    // The range before the conversion: converting a double beyond long long (1e300) is
    // undefined behaviour.
    if (!value || *value < static_cast<double>(min) || *value > static_cast<double>(max) ||
        *value != static_cast<double>(static_cast<long long>(*value))) {
        Error(path, "must be a whole number" + (unit.empty() ? "" : " " + std::string(unit)) +
                        " from " + std::to_string(min) + " to " + std::to_string(max));
        return std::nullopt;
    }
    return static_cast<long long>(*value);
}

std::optional<bool> JsonPathReader::Bool(Node node, const std::string& path) {
    if (!node.Exists()) return std::nullopt;
    if (!node.IsBool()) {
        Error(path, "must be true or false");
        return std::nullopt;
    }
    return node.Bool();
}

}  // namespace microcare::fhir
