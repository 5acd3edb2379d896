#include "fhir/json.hpp"

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/prettywriter.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

namespace microcare::fhir {
namespace {

// Numbers are kept as strings whose first byte is NUL, followed by the number's text. Real
// strings can never start with NUL: the parser refuses any string holding one.
constexpr char kNumberMark = '\0';

bool IsMarkedNumber(const JsonValue& value) {
    return value.IsString() && value.GetStringLength() > 0 && value.GetString()[0] == kNumberMark;
}

// Offset of the first byte that is not part of valid UTF-8 (overlong forms, surrogates and
// code points above U+10FFFF included) or is a raw NUL; npos when there is none. One pass,
// eight ASCII bytes at a time, instead of RapidJSON's per-character validation.
std::size_t FirstInvalidByte(std::string_view text) {
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    auto continuation = [&](std::size_t at) { return at < n && (p[at] & 0xC0) == 0x80; };
    while (i < n) {
        if (i + 8 <= n) {
            std::uint64_t block;
            std::memcpy(&block, p + i, 8);
            // All ASCII and no zero byte: the whole block is fine.
            const bool ascii = (block & 0x8080808080808080ULL) == 0;
            const bool has_zero =
                ((block - 0x0101010101010101ULL) & ~block & 0x8080808080808080ULL) != 0;
            if (ascii && !has_zero) {
                i += 8;
                continue;
            }
        }
        const unsigned char c = p[i];
        if (c == 0) return i;
        if (c < 0x80) {
            ++i;
        } else if (c >= 0xC2 && c <= 0xDF) {
            if (!continuation(i + 1)) return i;
            i += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (!continuation(i + 1) || !continuation(i + 2)) return i;
            if ((c == 0xE0 && p[i + 1] < 0xA0) || (c == 0xED && p[i + 1] > 0x9F)) return i;
            i += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (!continuation(i + 1) || !continuation(i + 2) || !continuation(i + 3)) return i;
            if ((c == 0xF0 && p[i + 1] < 0x90) || (c == 0xF4 && p[i + 1] > 0x8F)) return i;
            i += 4;
        } else {
            return i;
        }
    }
    return std::string_view::npos;
}

// Forwards RapidJSON's SAX events to the document, turning raw numbers into marked strings and
// refusing excessive nesting, and, when the text holds a `\u0000` escape, NUL characters.
template <bool kCheckNul>
class PreservingHandler {
public:
    PreservingHandler(rapidjson::Document& doc, std::size_t max_depth)
        : doc_(doc), max_depth_(max_depth) {}

    bool Null() { return doc_.Null(); }
    bool Bool(bool b) { return doc_.Bool(b); }
    bool Int(int i) { return doc_.Int(i); }
    bool Uint(unsigned u) { return doc_.Uint(u); }
    bool Int64(int64_t i) { return doc_.Int64(i); }
    bool Uint64(uint64_t u) { return doc_.Uint64(u); }
    bool Double(double d) { return doc_.Double(d); }
    bool RawNumber(const char* str, rapidjson::SizeType length, bool) {
        scratch_.assign(1, kNumberMark);
        scratch_.append(str, length);
        return doc_.String(scratch_.data(), static_cast<rapidjson::SizeType>(scratch_.size()),
                           true);
    }
    bool String(const char* str, rapidjson::SizeType length, bool copy) {
        if (kCheckNul && std::memchr(str, '\0', length) != nullptr) {
            problem_ = "a string contains the character U+0000, which FHIR does not allow";
            return false;
        }
        return doc_.String(str, length, copy);
    }
    bool Key(const char* str, rapidjson::SizeType length, bool copy) {
        if (kCheckNul && std::memchr(str, '\0', length) != nullptr) {
            problem_ = "a property name contains the character U+0000";
            return false;
        }
        return doc_.Key(str, length, copy);
    }
    bool StartObject() { return Enter() && doc_.StartObject(); }
    bool EndObject(rapidjson::SizeType count) {
        --depth_;
        return doc_.EndObject(count);
    }
    bool StartArray() { return Enter() && doc_.StartArray(); }
    bool EndArray(rapidjson::SizeType count) {
        --depth_;
        return doc_.EndArray(count);
    }

    const std::string& problem() const { return problem_; }

private:
    bool Enter() {
        if (++depth_ > max_depth_) {
            problem_ = "nesting deeper than " + std::to_string(max_depth_) + " levels";
            return false;
        }
        return true;
    }

    rapidjson::Document& doc_;
    std::size_t max_depth_;
    std::size_t depth_ = 0;
    std::string scratch_;
    std::string problem_;
};

// Where a value sits, for messages: `Bundle.entry[0].resource.focus`. Frames live on the
// stack of the walk below, so a path is only spelled out when there is something to report.
struct PathFrame {
    const PathFrame* parent = nullptr;
    std::string_view key;
    std::size_t index = 0;
    bool is_index = false;  // an array element at `index`, not the member `key`
};

std::string PathText(const PathFrame* frame) {
    if (frame == nullptr) return {};
    std::string path = PathText(frame->parent);
    if (frame->is_index) return path + "[" + std::to_string(frame->index) + "]";
    if (frame->key.empty()) return path + "[\"\"]";
    return path.empty() ? std::string(frame->key) : path + "." + std::string(frame->key);
}

// A text may decode to an unpaired low surrogate only through a `\uDC00`-`\uDFFF` escape
// (RapidJSON refuses unpaired high ones itself); without one, decoded strings need no check.
bool MayHoldLoneSurrogate(std::string_view text) {
    for (auto at = text.find("\\u"); at != std::string_view::npos; at = text.find("\\u", at + 2)) {
        if (at + 3 < text.size() && (text[at + 2] == 'd' || text[at + 2] == 'D')) {
            const char c = static_cast<char>(text[at + 3] | 0x20);
            if (c >= 'c' && c <= 'f') return true;
        }
    }
    return false;
}

struct StrictnessProblem {
    std::string path;
    std::string message;
};

// What RapidJSON lets through but an edge must refuse: a member name twice in one object
// (parsers disagree on which one wins, so two systems could read two different messages) and,
// when `check_strings`, strings that decoded to invalid UTF-8 (an unpaired `\uDC00`).
class StrictnessCheck {
public:
    explicit StrictnessCheck(bool check_strings) : check_strings_(check_strings) {}

    std::optional<StrictnessProblem> Run(const JsonValue& root) {
        PathFrame top;
        const PathFrame* start = nullptr;
        if (root.IsObject()) {
            auto type = root.FindMember("resourceType");
            if (type != root.MemberEnd() && type->value.IsString() &&
                !IsMarkedNumber(type->value)) {
                top.key = {type->value.GetString(), type->value.GetStringLength()};
                start = &top;
            }
        }
        Walk(root, start);
        return std::move(problem_);
    }

private:
    static std::string_view View(const JsonValue& value) {
        return {value.GetString(), value.GetStringLength()};
    }

    bool BadText(std::string_view text) const {
        return check_strings_ && FirstInvalidByte(text) != std::string_view::npos;
    }

    void Report(const PathFrame* at, std::string message) {
        if (!problem_) problem_ = StrictnessProblem{PathText(at), std::move(message)};
    }

    void Walk(const JsonValue& value, const PathFrame* at) {
        if (problem_) return;
        if (value.IsString()) {
            if (!IsMarkedNumber(value) && BadText(View(value)))
                Report(at, "the string holds an unpaired UTF-16 surrogate escape");
        } else if (value.IsArray()) {
            for (rapidjson::SizeType i = 0; i < value.Size() && !problem_; ++i) {
                PathFrame element{at, {}, i, true};
                Walk(value[i], &element);
            }
        } else if (value.IsObject()) {
            CheckNames(value, at);
            for (auto it = value.MemberBegin(); it != value.MemberEnd() && !problem_; ++it) {
                PathFrame member{at, View(it->name), 0, false};
                Walk(it->value, &member);
            }
        }
    }

    void CheckNames(const JsonValue& object, const PathFrame* at) {
        names_.clear();
        for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
            std::string_view name = View(it->name);
            // Named by its object: the name itself is not text that may be written anywhere.
            if (BadText(name))
                return Report(at, "a property name holds an unpaired UTF-16 surrogate escape");
            names_.push_back(name);
        }
        if (names_.size() < 2) return;
        // FHIR objects are small: sorting views is cheaper than hashing them.
        std::sort(names_.begin(), names_.end());
        auto twice = std::adjacent_find(names_.begin(), names_.end());
        if (twice != names_.end()) {
            PathFrame member{at, *twice, 0, false};
            Report(&member, "the property \"" + std::string(*twice) +
                                "\" appears more than once in one object");
        }
    }

    bool check_strings_;
    std::vector<std::string_view> names_;
    std::optional<StrictnessProblem> problem_;
};

std::string Position(std::string_view text, std::size_t offset) {
    offset = std::min(offset, text.size());
    std::size_t line = 1;
    std::size_t column = 1;
    for (std::size_t i = 0; i < offset; ++i) {
        if (text[i] == '\n') {
            ++line;
            column = 1;
        } else {
            ++column;
        }
    }
    return "line " + std::to_string(line) + ", column " + std::to_string(column) + " (byte " +
           std::to_string(offset) + ")";
}

}  // namespace

// ---- Node -----------------------------------------------------------------------------------

bool Node::IsObject() const { return value_ && value_->IsObject(); }
bool Node::IsArray() const { return value_ && value_->IsArray(); }
bool Node::IsString() const { return value_ && value_->IsString() && !IsMarkedNumber(*value_); }
bool Node::IsNumber() const { return value_ && IsMarkedNumber(*value_); }
bool Node::IsBool() const { return value_ && value_->IsBool(); }
bool Node::IsNull() const { return value_ && value_->IsNull(); }

std::string_view Node::String() const {
    if (!IsString()) return {};
    return {value_->GetString(), value_->GetStringLength()};
}

std::string_view Node::NumberText() const {
    if (!IsNumber()) return {};
    return {value_->GetString() + 1, value_->GetStringLength() - 1};
}

std::optional<double> Node::Number() const {
    std::string_view text = NumberText();
    if (text.empty()) return std::nullopt;
    double result = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), result);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return result;
}

std::optional<bool> Node::Bool() const {
    if (!IsBool()) return std::nullopt;
    return value_->GetBool();
}

Node Node::operator[](std::string_view key) const {
    // An empty key is a legal member name too (JsonEqual looks every member up by name).
    if (!IsObject()) return Node();
    // Length and first character first: most member names differ in one of them, and a call
    // to memcmp for every member is what a lookup would otherwise cost.
    for (auto it = value_->MemberBegin(); it != value_->MemberEnd(); ++it) {
        const rapidjson::SizeType length = it->name.GetStringLength();
        if (length != key.size()) continue;
        const char* name = it->name.GetString();
        std::size_t k = 0;
        while (k < length && name[k] == key[k]) ++k;
        if (k == length) return Node(&it->value);
    }
    return Node();
}

Node Node::operator[](std::size_t index) const {
    if (!IsArray() || index >= value_->Size()) return Node();
    return Node(&(*value_)[static_cast<rapidjson::SizeType>(index)]);
}

std::size_t Node::Size() const {
    if (IsArray()) return value_->Size();
    if (IsObject()) return value_->MemberCount();
    return 0;
}

std::string_view Node::MemberName(std::size_t index) const {
    const auto& member = value_->MemberBegin()[static_cast<std::ptrdiff_t>(index)];
    return {member.name.GetString(), member.name.GetStringLength()};
}

Node Node::Member(std::size_t index) const {
    return Node(&value_->MemberBegin()[static_cast<std::ptrdiff_t>(index)].value);
}

std::string_view Node::TypeName() const {
    if (!value_) return "nothing";
    if (IsNumber()) return "number";
    if (value_->IsString()) return "string";
    if (value_->IsObject()) return "object";
    if (value_->IsArray()) return "array";
    if (value_->IsBool()) return "boolean";
    return "null";
}

std::optional<std::int64_t> NonNegativeInteger(Node node) {
    std::string_view text = node.IsString() ? node.String() : node.NumberText();
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) {
        return std::nullopt;
    }
    return value;
}

bool JsonEqual(Node a, Node b) {
    if (a.Exists() != b.Exists()) return false;
    if (!a.Exists()) return true;
    if (a.TypeName() != b.TypeName()) return false;
    if (a.IsNumber()) return a.NumberText() == b.NumberText();
    if (a.IsString()) return a.String() == b.String();
    if (a.IsBool()) return a.Bool() == b.Bool();
    if (a.IsArray()) {
        if (a.Size() != b.Size()) return false;
        for (std::size_t i = 0; i < a.Size(); ++i) {
            if (!JsonEqual(a[i], b[i])) return false;
        }
        return true;
    }
    if (a.IsObject()) {
        if (a.Size() != b.Size()) return false;
        for (std::size_t i = 0; i < a.Size(); ++i) {
            if (!JsonEqual(a.Member(i), b[a.MemberName(i)])) return false;
        }
        return true;
    }
    return true;  // both null
}

// ---- JsonDocument ---------------------------------------------------------------------------

struct JsonDocument::Impl {
    // Parsed in place: strings point into this copy of the text, which the document owns.
    std::string buffer;
    rapidjson::Document doc;
};

JsonDocument::JsonDocument() : impl_(std::make_unique<Impl>()) {}
JsonDocument::~JsonDocument() = default;
JsonDocument::JsonDocument(JsonDocument&&) noexcept = default;
JsonDocument& JsonDocument::operator=(JsonDocument&&) noexcept = default;

namespace {

template <bool kCheckNul>
std::optional<JsonDocument> ParseWith(JsonDocument result, rapidjson::Document& doc,
                                      std::string& buffer, const std::string& text,
                                      IssueList& issues, const JsonParseOptions& options) {
    PreservingHandler<kCheckNul> handler(doc, options.max_depth);
    rapidjson::ParseResult parsed;
    // The text was checked for NUL bytes, so the buffer's terminating NUL is its real end.
    rapidjson::InsituStringStream stream(buffer.data());
    auto generate = [&](rapidjson::Document&) {
        rapidjson::Reader reader;
        constexpr unsigned kFlags =
            rapidjson::kParseInsituFlag | rapidjson::kParseNumbersAsStringsFlag;
        parsed = reader.Parse<kFlags>(stream, handler);
        return !parsed.IsError();
    };
    doc.Populate(generate);
    if (parsed.IsError()) {
        std::string message = "invalid JSON at " + Position(text, parsed.Offset()) + ": ";
        if (!handler.problem().empty()) {
            message += handler.problem();
        } else {
            message += rapidjson::GetParseError_En(parsed.Code());
        }
        issues.Error("structure", "", message);
        return std::nullopt;
    }
    if (auto problem = StrictnessCheck(MayHoldLoneSurrogate(text)).Run(doc)) {
        issues.Error("structure", problem->path, "invalid JSON: " + problem->message);
        return std::nullopt;
    }
    return result;
}

}  // namespace

std::optional<JsonDocument> JsonDocument::Parse(const std::string& text, IssueList& issues,
                                                const JsonParseOptions& options) {
    if (std::size_t bad = FirstInvalidByte(text); bad != std::string_view::npos) {
        issues.Error("structure", "",
                     "invalid JSON at " + Position(text, bad) +
                         (text[bad] == '\0' ? ": a NUL byte" : ": not valid UTF-8"));
        return std::nullopt;
    }
    JsonDocument result;
    rapidjson::Document& doc = result.impl_->doc;
    std::string& buffer = result.impl_->buffer;
    buffer = text;
    if (text.find("\\u0000") != std::string::npos) {
        return ParseWith<true>(std::move(result), doc, buffer, text, issues, options);
    }
    return ParseWith<false>(std::move(result), doc, buffer, text, issues, options);
}

Node JsonDocument::Root() const { return Node(&impl_->doc); }

// ---- JsonWriter -----------------------------------------------------------------------------

struct JsonWriter::Impl {
    // Room for a typical transaction Bundle from the start, so it is not regrown as it is written.
    explicit Impl(bool pretty_output)
        : pretty(pretty_output), buffer(nullptr, 16 * 1024), compact_writer(buffer) {
        if (pretty) {
            pretty_writer.emplace(buffer);
            pretty_writer->SetIndent(' ', 2);
        }
    }

    template <typename Fn>
    void With(Fn&& fn) {
        if (pretty) {
            fn(*pretty_writer);
        } else {
            fn(compact_writer);
        }
    }

    bool pretty;
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> compact_writer;
    std::optional<rapidjson::PrettyWriter<rapidjson::StringBuffer>> pretty_writer;
};

JsonWriter::JsonWriter(bool pretty) : impl_(std::make_unique<Impl>(pretty)) {}
JsonWriter::~JsonWriter() = default;

void JsonWriter::StartObject() {
    impl_->With([](auto& w) { w.StartObject(); });
}
void JsonWriter::EndObject() {
    impl_->With([](auto& w) { w.EndObject(); });
}
void JsonWriter::StartArray() {
    impl_->With([](auto& w) { w.StartArray(); });
}
void JsonWriter::EndArray() {
    impl_->With([](auto& w) { w.EndArray(); });
}
void JsonWriter::Key(std::string_view key) {
    // RapidJSON's writer copies bytes as they are: invalid ones would make invalid JSON.
    std::string valid;
    if (FirstInvalidByte(key) != std::string_view::npos) key = valid = ToValidUtf8(key);
    impl_->With([&](auto& w) { w.Key(key.data(), static_cast<rapidjson::SizeType>(key.size())); });
}
void JsonWriter::String(std::string_view value) {
    std::string valid;
    if (FirstInvalidByte(value) != std::string_view::npos) value = valid = ToValidUtf8(value);
    impl_->With(
        [&](auto& w) { w.String(value.data(), static_cast<rapidjson::SizeType>(value.size())); });
}
void JsonWriter::Bool(bool value) {
    impl_->With([&](auto& w) { w.Bool(value); });
}
void JsonWriter::Int(long long value) {
    impl_->With([&](auto& w) { w.Int64(value); });
}
void JsonWriter::RawNumber(std::string_view text) {
    impl_->With([&](auto& w) { w.RawValue(text.data(), text.size(), rapidjson::kNumberType); });
}

void JsonWriter::Value(Node node) {
    if (node.IsObject()) {
        StartObject();
        node.ForEachMember([&](std::string_view name, Node member) {
            Key(name);
            Value(member);
        });
        EndObject();
    } else if (node.IsArray()) {
        StartArray();
        for (std::size_t i = 0; i < node.Size(); ++i) Value(node[i]);
        EndArray();
    } else if (node.IsNumber()) {
        RawNumber(node.NumberText());
    } else if (node.IsString()) {
        String(node.String());
    } else if (node.IsBool()) {
        Bool(*node.Bool());
    } else {
        impl_->With([](auto& w) { w.Null(); });
    }
}

std::string_view JsonWriter::View() const {
    return {impl_->buffer.GetString(), impl_->buffer.GetSize()};
}

std::string JsonWriter::Take() { return std::string(View()); }

std::string ToValidUtf8(std::string_view text) {
    static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD
    std::string out;
    out.reserve(text.size());
    while (true) {
        const std::size_t bad = FirstInvalidByte(text);
        if (bad == std::string_view::npos) break;
        out.append(text.substr(0, bad)).append(kReplacement);
        text.remove_prefix(bad + 1);
    }
    out.append(text);
    return out;
}

std::string Serialize(Node node, bool pretty) {
    JsonWriter writer(pretty);
    writer.Value(node);
    return writer.Take();
}

}  // namespace microcare::fhir
