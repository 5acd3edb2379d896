#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "fhir/issues.hpp"

// RapidJSON stays inside fhir/: the rest of MicroCare sees Node, JsonDocument and JsonWriter.
namespace rapidjson {
class CrtAllocator;
template <typename BaseAllocator>
class MemoryPoolAllocator;
template <typename CharType>
struct UTF8;
template <typename Encoding, typename Allocator>
class GenericValue;
}  // namespace rapidjson

namespace microcare::fhir {

using JsonValue = rapidjson::GenericValue<rapidjson::UTF8<char>,
                                          rapidjson::MemoryPoolAllocator<rapidjson::CrtAllocator>>;

// A read-only view of one JSON value of a parsed document. A missing member or element is an
// empty Node, so that chains like `node["code"]["coding"][0]` need no checks in between.
//
// Numbers keep the exact text they had in the input (`1.50` stays `1.50`): FHIR decimals carry
// their precision, which a double would lose.
class Node {
public:
    Node() = default;
    explicit Node(const JsonValue* value) : value_(value) {}

    bool Exists() const { return value_ != nullptr; }
    explicit operator bool() const { return Exists(); }
    bool IsObject() const;
    bool IsArray() const;
    bool IsString() const;
    bool IsNumber() const;
    bool IsBool() const;
    bool IsNull() const;

    // The string's text; empty for anything that is not a string.
    std::string_view String() const;
    // The number's text exactly as written; empty for anything that is not a number.
    std::string_view NumberText() const;
    std::optional<double> Number() const;
    std::optional<bool> Bool() const;

    Node operator[](std::string_view key) const;
    Node operator[](std::size_t index) const;
    Node operator[](int index) const { return (*this)[static_cast<std::size_t>(index)]; }
    // Number of elements of an array or members of an object; 0 otherwise.
    std::size_t Size() const;

    // Object members in document order.
    template <typename Fn>
    void ForEachMember(Fn&& fn) const {
        for (std::size_t i = 0, n = Size(); IsObject() && i < n; ++i) fn(MemberName(i), Member(i));
    }
    std::string_view MemberName(std::size_t index) const;
    Node Member(std::size_t index) const;

    // A short name of the JSON type, for error messages ("string", "object", ...).
    std::string_view TypeName() const;

    const JsonValue* raw() const { return value_; }
    bool operator==(const Node& other) const { return value_ == other.value_; }

private:
    const JsonValue* value_ = nullptr;
};

// A whole number >= 0 written as a JSON number or a string (FHIR's unsignedInt, and the
// Subscriptions backport's event numbers in valueString); nullopt for anything else.
std::optional<std::int64_t> NonNegativeInteger(Node node);

// Deep equality, numbers compared by their text.
bool JsonEqual(Node a, Node b);

struct JsonParseOptions {
    std::size_t max_depth = 100;
};

// An immutable parsed JSON document.
class JsonDocument {
public:
    JsonDocument();
    ~JsonDocument();
    JsonDocument(JsonDocument&&) noexcept;
    JsonDocument& operator=(JsonDocument&&) noexcept;

    // Parses `text`, which must be valid UTF-8. On an error, adds one issue with the line,
    // column and byte offset and returns nullopt. Strings containing U+0000 are refused: FHIR
    // strings may not hold control characters below U+0009.
    static std::optional<JsonDocument> Parse(const std::string& text, IssueList& issues,
                                             const JsonParseOptions& options = {});

    Node Root() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Streams JSON text, compact or indented. Used by the builders and to write documents back.
// Keys and strings that are not valid UTF-8 are written as ToValidUtf8 makes them.
class JsonWriter {
public:
    explicit JsonWriter(bool pretty = false);
    ~JsonWriter();
    JsonWriter(const JsonWriter&) = delete;
    JsonWriter& operator=(const JsonWriter&) = delete;

    void StartObject();
    void EndObject();
    void StartArray();
    void EndArray();
    void Key(std::string_view key);
    void String(std::string_view value);
    void Bool(bool value);
    void Int(long long value);
    // Writes `text`, which must be a valid JSON number, as it is.
    void RawNumber(std::string_view text);
    // Writes a parsed value as it is, numbers included.
    void Value(Node node);

    // Convenience for the common `"key": "value"` pair.
    void Field(std::string_view key, std::string_view value) {
        Key(key);
        String(value);
    }

    // The text so far; valid once the root value is complete.
    std::string_view View() const;
    std::string Take();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

std::string Serialize(Node node, bool pretty = false);

// `text` with each byte that is not part of valid UTF-8 (a lone surrogate's encoding, an
// overlong form, a stray continuation byte), and each NUL, replaced by U+FFFD. JsonWriter writes
// strings through it, so that whatever bytes a caller passes, what it writes is valid UTF-8 JSON
// that JsonDocument::Parse reads back.
std::string ToValidUtf8(std::string_view text);

}  // namespace microcare::fhir
