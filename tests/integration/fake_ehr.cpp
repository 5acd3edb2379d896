#include "tests/integration/fake_ehr.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <cctype>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "adapter/thread_name.hpp"
#include "fhir/issues.hpp"
#include "fhir/json.hpp"
#include "fhir/operation_outcome.hpp"

namespace microcare::testing {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

constexpr std::string_view kFhirJson = "application/fhir+json; charset=utf-8";
constexpr auto kWriteTimeout = 30s;
constexpr auto kHandshakeTimeout = 10s;
constexpr auto kStopDeadline = 5s;

// ---- Small text helpers --------------------------------------------------------------------

int HexValue(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Percent-decoding of a query component. '+' stays '+': FHIR clients send "%2B" for a plus
// (time-zone offsets) and "%20" for a space.
std::string PercentDecode(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size()) {
            const int hi = HexValue(text[i + 1]);
            const int lo = HexValue(text[i + 2]);
            if (hi >= 0 && lo >= 0) {
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
                continue;
            }
        }
        out.push_back(text[i]);
    }
    return out;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    std::size_t start = 0;
    for (;;) {
        const std::size_t end = text.find(separator, start);
        parts.push_back(text.substr(start, end == std::string_view::npos ? end : end - start));
        if (end == std::string_view::npos) return parts;
        start = end + 1;
    }
}

using Params = std::vector<std::pair<std::string, std::string>>;

// "a=1&b=x%7Cy" -> {{"a","1"},{"b","x|y"}}; empty pieces are skipped.
Params ParseQuery(std::string_view query) {
    Params params;
    for (std::string_view piece : Split(query, '&')) {
        if (piece.empty()) continue;
        const std::size_t eq = piece.find('=');
        params.emplace_back(
            PercentDecode(piece.substr(0, eq)),
            eq == std::string_view::npos ? std::string{} : PercentDecode(piece.substr(eq + 1)));
    }
    return params;
}

// A search value's alternatives: "a,b" is a OR b; "\," is a literal comma.
std::vector<std::string> SplitAlternatives(std::string_view value) {
    std::vector<std::string> out(1);
    for (std::size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '\\' && i + 1 < value.size() && value[i + 1] == ',') {
            out.back().push_back(',');
            ++i;
        } else if (value[i] == ',') {
            out.emplace_back();
        } else {
            out.back().push_back(value[i]);
        }
    }
    return out;
}

// "http://h/fhir/Patient/1/_history/2" and "Patient/1" -> "Patient/1"; "1" -> "1".
std::string NormaliseReference(std::string_view reference) {
    if (const std::size_t history = reference.find("/_history/");
        history != std::string_view::npos) {
        reference = reference.substr(0, history);
    }
    const std::size_t last = reference.rfind('/');
    if (last == std::string_view::npos || last == 0) return std::string(reference);
    const std::size_t previous = reference.rfind('/', last - 1);
    return std::string(reference.substr(previous == std::string_view::npos ? 0 : previous + 1));
}

bool IsResourceTypeName(std::string_view text) {
    if (text.empty() || text[0] < 'A' || text[0] > 'Z') return false;
    return std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    });
}

std::string FormatInstant(std::chrono::system_clock::time_point when) {
    const auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(when.time_since_epoch()).count();
    const std::time_t seconds = static_cast<std::time_t>(millis / 1000);
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[96];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900,
                  utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec,
                  static_cast<int>(millis % 1000));
    return text;
}

std::string OutcomeJson(std::string_view code, std::string_view diagnostics,
                        std::string_view expression = {}) {
    fhir::IssueList issues;
    issues.Error(code, expression, diagnostics);
    return fhir::OperationOutcomeJson(issues);
}

// ---- JSON helpers ---------------------------------------------------------------------------

using RefMap = std::map<std::string, std::string, std::less<>>;

// Copies a value, replacing every `reference` string found in `refs`.
void CopyRewritten(fhir::Node node, fhir::JsonWriter& out, const RefMap& refs) {
    if (node.IsObject()) {
        out.StartObject();
        node.ForEachMember([&](std::string_view name, fhir::Node value) {
            out.Key(name);
            if (name == "reference" && value.IsString()) {
                if (auto it = refs.find(value.String()); it != refs.end()) {
                    out.String(it->second);
                    return;
                }
            }
            CopyRewritten(value, out, refs);
        });
        out.EndObject();
    } else if (node.IsArray()) {
        out.StartArray();
        for (std::size_t i = 0; i < node.Size(); ++i) CopyRewritten(node[i], out, refs);
        out.EndArray();
    } else {
        out.Value(node);
    }
}

// Every `reference` string in a value.
void CollectReferences(fhir::Node node, std::vector<std::string_view>& out) {
    if (node.IsObject()) {
        node.ForEachMember([&](std::string_view name, fhir::Node value) {
            if (name == "reference" && value.IsString()) {
                out.push_back(value.String());
            } else {
                CollectReferences(value, out);
            }
        });
    } else if (node.IsArray()) {
        for (std::size_t i = 0; i < node.Size(); ++i) CollectReferences(node[i], out);
    }
}

// A resource as stored: `id` and meta.versionId/lastUpdated set, references rewritten.
// With `keep_version`, a versionId/lastUpdated already in the resource is kept (seeding).
std::string WriteStored(fhir::Node resource, std::string_view id, int version,
                        std::string_view last_updated, const RefMap& refs, bool keep_version) {
    fhir::JsonWriter out;
    out.StartObject();
    out.Field("resourceType", resource["resourceType"].String());
    out.Field("id", id);
    const fhir::Node meta = resource["meta"];
    out.Key("meta");
    out.StartObject();
    if (keep_version && meta["versionId"].IsString()) {
        out.Field("versionId", meta["versionId"].String());
    } else {
        out.Field("versionId", std::to_string(version));
    }
    if (keep_version && meta["lastUpdated"].IsString()) {
        out.Field("lastUpdated", meta["lastUpdated"].String());
    } else {
        out.Field("lastUpdated", last_updated);
    }
    meta.ForEachMember([&](std::string_view name, fhir::Node value) {
        if (name == "versionId" || name == "lastUpdated") return;
        out.Key(name);
        CopyRewritten(value, out, refs);
    });
    out.EndObject();
    resource.ForEachMember([&](std::string_view name, fhir::Node value) {
        if (name == "resourceType" || name == "id" || name == "meta") return;
        out.Key(name);
        CopyRewritten(value, out, refs);
    });
    out.EndObject();
    return out.Take();
}

std::string ParseFailure(const fhir::IssueList& issues) {
    return issues.empty() ? std::string("invalid JSON") : fhir::FormatIssue(*issues.begin());
}

fhir::JsonDocument ParseOrThrow(const std::string& text) {
    fhir::IssueList issues;
    std::optional<fhir::JsonDocument> doc = fhir::JsonDocument::Parse(text, issues);
    if (!doc) throw std::invalid_argument(ParseFailure(issues));
    return std::move(*doc);
}

// ---- Search ---------------------------------------------------------------------------------

struct SearchSpec {
    Params filters;
    std::optional<std::size_t> count;
    std::size_t offset = 0;
    std::vector<std::string> includes;  // "MedicationRequest:medication": the element to follow
};

// Parameters that change nothing here: formats, and totals (always given).
bool IsIgnoredParameter(std::string_view name) {
    return name == "_format" || name == "_pretty" || name == "_total";
}

bool IsSupportedParameter(std::string_view name) {
    return name == "patient" || name == "subject" || name == "encounter" || name == "identifier" ||
           name == "_id" || name == "status" || name == "entity-name" ||
           name == "entity-name:exact";
}

std::optional<std::size_t> ParseCount(std::string_view text) {
    if (text.empty() || text.size() > 9) return std::nullopt;
    std::size_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<std::size_t>(c - '0');
    }
    return value;
}

// An error message when the query can't be served.
std::optional<std::string> ParseSearch(std::string_view query, bool ignore_unknown,
                                       SearchSpec& spec) {
    for (auto& [name, value] : ParseQuery(query)) {
        if (name == "_count" || name == "_offset") {
            std::optional<std::size_t> number = ParseCount(value);
            if (!number) return "invalid " + name + " '" + value + "'";
            if (name == "_count") {
                spec.count = *number;
            } else {
                spec.offset = *number;
            }
        } else if (IsSupportedParameter(name)) {
            spec.filters.emplace_back(std::move(name), std::move(value));
        } else if (name == "_include") {
            if (value.find(':') == std::string::npos) return "invalid _include '" + value + "'";
            spec.includes.push_back(value.substr(value.find(':') + 1));
        } else if (!IsIgnoredParameter(name) && !ignore_unknown) {
            return "unsupported search parameter '" + name + "'";
        }
    }
    return std::nullopt;
}

// The reference strings of the elements `names` (single references or arrays of them).
std::vector<std::string> ReferencesOf(fhir::Node resource,
                                      std::initializer_list<std::string_view> names) {
    std::vector<std::string> out;
    for (std::string_view name : names) {
        const fhir::Node element = resource[name];
        if (element.IsArray()) {
            for (std::size_t i = 0; i < element.Size(); ++i) {
                if (element[i]["reference"].IsString()) {
                    out.push_back(NormaliseReference(element[i]["reference"].String()));
                }
            }
        } else if (element["reference"].IsString()) {
            out.push_back(NormaliseReference(element["reference"].String()));
        }
    }
    return out;
}

bool ReferenceMatches(const std::vector<std::string>& references, std::string_view wanted,
                      std::string_view implied_type) {
    std::string want = NormaliseReference(wanted);
    if (want.find('/') == std::string::npos && !implied_type.empty()) {
        want = std::string(implied_type) + "/" + want;
    }
    for (const std::string& reference : references) {
        if (want.find('/') != std::string::npos) {
            if (reference == want) return true;
        } else if (reference.size() > want.size() && reference.ends_with("/" + want)) {
            return true;
        }
    }
    return false;
}

bool IdentifierMatches(fhir::Node identifier, std::string_view wanted) {
    const std::size_t bar = wanted.find('|');
    const fhir::Node system = identifier["system"];
    const fhir::Node value = identifier["value"];
    if (bar == std::string_view::npos) return value.IsString() && value.String() == wanted;
    const std::string_view want_system = wanted.substr(0, bar);
    const std::string_view want_value = wanted.substr(bar + 1);
    if (want_system.empty()) {
        if (system.Exists()) return false;
    } else if (!system.IsString() || system.String() != want_system) {
        return false;
    }
    return want_value.empty() || (value.IsString() && value.String() == want_value);
}

bool MatchesOne(fhir::Node resource, std::string_view name, std::string_view wanted) {
    if (name == "patient") {
        return ReferenceMatches(
            ReferencesOf(resource, {"subject", "patient", "for", "beneficiary"}), wanted,
            "Patient");
    }
    if (name == "subject") {
        return ReferenceMatches(ReferencesOf(resource, {"subject", "for"}), wanted, {});
    }
    if (name == "encounter") {
        return ReferenceMatches(ReferencesOf(resource, {"encounter", "context"}), wanted,
                                "Encounter");
    }
    if (name == "_id") return resource["id"].String() == wanted;
    if (name == "status") return resource["status"].String() == wanted;
    if (name.starts_with("entity-name")) {
        // A string parameter: by default it matches the start, case-insensitively (as Medplum
        // does); `:exact` the whole value.
        const bool exact = name.ends_with(":exact");
        const fhir::Node entities = resource["entity"];
        for (std::size_t i = 0; entities.IsArray() && i < entities.Size(); ++i) {
            const std::string_view entity_name = entities[i]["name"].String();
            if (exact ? entity_name == wanted
                      : entity_name.size() >= wanted.size() &&
                            std::equal(wanted.begin(), wanted.end(), entity_name.begin(),
                                       [](char a, char b) {
                                           return std::tolower(static_cast<unsigned char>(a)) ==
                                                  std::tolower(static_cast<unsigned char>(b));
                                       })) {
                return true;
            }
        }
        return false;
    }
    if (name == "identifier") {
        const fhir::Node identifiers = resource["identifier"];
        if (identifiers.IsArray()) {
            for (std::size_t i = 0; i < identifiers.Size(); ++i) {
                if (IdentifierMatches(identifiers[i], wanted)) return true;
            }
            return false;
        }
        return identifiers.IsObject() && IdentifierMatches(identifiers, wanted);
    }
    return false;
}

bool Matches(fhir::Node resource, const Params& filters) {
    for (const auto& [name, value] : filters) {
        bool any = false;
        for (const std::string& alternative : SplitAlternatives(value)) {
            if (MatchesOne(resource, name, alternative)) {
                any = true;
                break;
            }
        }
        if (!any) return false;
    }
    return true;
}

// The raw query without _count and _offset, for building paging links.
std::string QueryWithoutPaging(std::string_view query) {
    std::string out;
    for (std::string_view piece : Split(query, '&')) {
        if (piece.empty() || piece.starts_with("_count=") || piece.starts_with("_offset=")) {
            continue;
        }
        if (!out.empty()) out.push_back('&');
        out.append(piece);
    }
    return out;
}

// ---- The HTTP side --------------------------------------------------------------------------

struct Response {
    unsigned status = 200;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
};

Response Json(unsigned status, std::string body) { return Response{status, std::move(body), {}}; }

Response Error(unsigned status, std::string_view code, std::string_view diagnostics,
               std::string_view expression = {}) {
    return Response{status, OutcomeJson(code, diagnostics, expression), {}};
}

struct Classified {
    std::string path;   // relative to the base, no query
    std::string query;  // raw
    RequestKind kind = RequestKind::kOther;
    std::string type;
    std::string id;
    bool in_base = true;
};

struct Connection {
    Connection(tcp::socket socket, asio::ssl::context* tls, std::size_t connection_number)
        : number(connection_number), timer(socket.get_executor()) {
        if (tls != nullptr) {
            secure.emplace(std::move(socket), *tls);
        } else {
            plain.emplace(std::move(socket));
        }
    }

    beast::tcp_stream& Lowest() { return plain ? *plain : secure->next_layer(); }

    std::size_t number;
    asio::steady_timer timer;  // stalls and delays; cancelled by Stop()
    bool closed = false;       // set by Stop() on the connection's strand
    std::optional<beast::tcp_stream> plain;
    std::optional<asio::ssl::stream<beast::tcp_stream>> secure;
};

// Closes without answering: RST (linger 0) or a plain close (FIN).
void Drop(Connection& connection, bool reset) {
    beast::error_code ignored;
    tcp::socket& socket = connection.Lowest().socket();
    if (reset) socket.set_option(asio::socket_base::linger(true, 0), ignored);
    socket.close(ignored);
}

asio::awaitable<bool> Sleep(Connection& connection, std::chrono::steady_clock::duration delay) {
    if (connection.closed) co_return false;
    if (delay == std::chrono::steady_clock::duration::max()) {
        connection.timer.expires_at(std::chrono::steady_clock::time_point::max());
    } else {
        connection.timer.expires_after(delay);
    }
    auto [ec] = co_await connection.timer.async_wait(asio::as_tuple(asio::use_awaitable));
    co_return !ec && !connection.closed;
}

}  // namespace

std::string_view ToString(RequestKind kind) {
    switch (kind) {
        case RequestKind::kRead:
            return "read";
        case RequestKind::kSearch:
            return "search";
        case RequestKind::kTransaction:
            return "transaction";
        case RequestKind::kCreate:
            return "create";
        case RequestKind::kUpdate:
            return "update";
        case RequestKind::kMetadata:
            return "metadata";
        case RequestKind::kOther:
            return "other";
    }
    return "other";
}

// ---- Fault factories ------------------------------------------------------------------------

Fault Fault::Status(unsigned status, std::string body) {
    Fault fault;
    fault.status = status;
    fault.body = std::move(body);
    return fault;
}

Fault Fault::ServerError() {
    return Status(500, OutcomeJson("exception", "injected server error"));
}

Fault Fault::Unavailable() {
    return Status(503, OutcomeJson("transient", "injected unavailability"));
}

Fault Fault::TooManyRequests(int retry_after_seconds) {
    Fault fault = Status(429, OutcomeJson("throttled", "injected rate limit"));
    fault.headers.emplace_back("Retry-After", std::to_string(retry_after_seconds));
    return fault;
}

Fault Fault::Outcome(unsigned status, std::string_view issue_code, std::string_view diagnostics) {
    return Status(status, OutcomeJson(issue_code, diagnostics));
}

Fault Fault::Reset() {
    Fault fault;
    fault.action = FaultAction::kReset;
    return fault;
}

Fault Fault::Close() {
    Fault fault;
    fault.action = FaultAction::kClose;
    return fault;
}

Fault Fault::Stall() {
    Fault fault;
    fault.action = FaultAction::kStall;
    return fault;
}

Fault Fault::CommitThenReset() {
    Fault fault;
    fault.action = FaultAction::kCommitThenReset;
    return fault;
}

Fault Fault::Delay(std::chrono::milliseconds delay) {
    Fault fault;
    fault.action = FaultAction::kDelay;
    fault.delay = delay;
    return fault;
}

std::optional<std::string> ReceivedRequest::Header(std::string_view lower_case_name) const {
    for (const auto& [name, value] : headers) {
        if (name == lower_case_name) return value;
    }
    return std::nullopt;
}

// ---- The server -----------------------------------------------------------------------------

struct FakeEhr::Impl {
    struct Stored {
        std::string json;
        fhir::JsonDocument doc;
        std::uint64_t sequence = 0;
        int version = 1;
        std::string last_updated;
    };
    using TypeStore = std::map<std::string, Stored, std::less<>>;

    struct FaultRule {
        std::string method;
        std::string prefix;
        Fault fault;
        std::size_t remaining = 0;
    };

    explicit Impl(FakeEhrOptions opts)
        : options(std::move(opts)),
          io(static_cast<int>(std::max<std::size_t>(options.threads, 1))),
          acceptor(asio::make_strand(io)) {
        const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
        acceptor.open(endpoint.protocol());
        acceptor.set_option(asio::socket_base::reuse_address(true));
        acceptor.bind(endpoint);
        acceptor.listen(asio::socket_base::max_listen_connections);
        port = acceptor.local_endpoint().port();
        asio::co_spawn(acceptor.get_executor(), Accept(), asio::detached);
        const std::size_t count = std::max<std::size_t>(options.threads, 1);
        running = count;
        for (std::size_t i = 0; i < count; ++i) {
            threads.emplace_back([this] {
                adapter::NameThisThread("fake-ehr");
                for (;;) {
                    try {
                        io.run();
                        break;
                    } catch (const std::exception& e) {
                        std::fprintf(stderr, "fake EHR: handler threw: %s\n", e.what());
                    }
                }
                {
                    std::lock_guard lock(mutex);
                    --running;
                }
                threads_done.notify_all();
            });
        }
    }

    ~Impl() { Stop(); }

    void Stop() {
        std::lock_guard stop_lock(stop_mutex);  // a second caller waits for the first
        if (threads.empty()) return;
        std::vector<std::function<void()>> to_close;
        {
            std::lock_guard lock(mutex);
            stopping = true;
            refusing.reset();
            for (auto& [number, closer] : closers) to_close.push_back(closer);
            closers.clear();
        }
        asio::post(acceptor.get_executor(), [this] {
            beast::error_code ignored;
            acceptor.close(ignored);
        });
        for (auto& closer : to_close) closer();
        {
            std::unique_lock lock(mutex);
            if (!threads_done.wait_for(lock, kStopDeadline, [this] { return running == 0; })) {
                lock.unlock();
                std::fprintf(stderr, "fake EHR: connections still open after %llds; stopping\n",
                             static_cast<long long>(kStopDeadline.count()));
                io.stop();
            }
        }
        for (std::thread& thread : threads) {
            if (thread.joinable()) thread.join();
        }
        threads.clear();
    }

    // The EHR down: the listening socket is closed, so that connecting is refused, and so is
    // every open connection. On the acceptor's strand, so no accept is half done meanwhile.
    void RefuseConnections() {
        {
            // With no listener and no connection the io_context would run out of work and its
            // threads end: hold them until AcceptConnections() or Stop().
            std::lock_guard lock(mutex);
            if (!refusing) refusing.emplace(io.get_executor());
        }
        std::promise<void> closed;
        asio::post(acceptor.get_executor(), [this, &closed] {
            beast::error_code ignored;
            acceptor.close(ignored);
            closed.set_value();
        });
        closed.get_future().wait();
        std::vector<std::function<void()>> to_close;
        {
            std::lock_guard lock(mutex);
            for (auto& [number, closer] : closers) to_close.push_back(closer);
        }
        for (auto& closer : to_close) closer();
    }

    // Back up, on the same port (the client under test knows no other).
    void AcceptConnections() {
        std::promise<beast::error_code> opened;
        asio::post(acceptor.get_executor(), [this, &opened] {
            beast::error_code ec;
            if (acceptor.is_open()) return opened.set_value(ec);
            const tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), port);
            acceptor.open(endpoint.protocol(), ec);
            if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
            if (!ec) acceptor.bind(endpoint, ec);
            if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
            if (ec) {
                beast::error_code ignored;
                acceptor.close(ignored);
            } else {
                // The old Accept() ended with operation_aborted when the acceptor closed.
                asio::co_spawn(acceptor.get_executor(), Accept(), asio::detached);
            }
            opened.set_value(ec);
        });
        const beast::error_code ec = opened.get_future().get();
        {
            std::lock_guard lock(mutex);
            if (!ec) refusing.reset();
        }
        if (ec) {
            throw std::runtime_error("fake EHR: cannot listen on port " + std::to_string(port) +
                                     " again: " + ec.message());
        }
    }

    std::string BaseUrl() const {
        return std::string(options.tls ? "https" : "http") +
               "://127.0.0.1:" + std::to_string(port) + options.base_path;
    }

    std::string Now() const {
        return FormatInstant(options.clock ? options.clock() : std::chrono::system_clock::now());
    }

    // ---- Connections ----

    asio::awaitable<void> Accept() {
        for (;;) {
            auto [ec, socket] = co_await acceptor.async_accept(asio::make_strand(io),
                                                               asio::as_tuple(asio::use_awaitable));
            if (ec) {
                if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
                continue;
            }
            auto connection =
                std::make_shared<Connection>(std::move(socket), options.tls, ++connections);
            if (!Register(connection)) {
                Drop(*connection, false);
                continue;
            }
            asio::co_spawn(connection->timer.get_executor(), Session(connection), asio::detached);
        }
    }

    bool Register(const std::shared_ptr<Connection>& connection) {
        std::lock_guard lock(mutex);
        if (stopping) return false;
        std::weak_ptr<Connection> weak = connection;
        closers[connection->number] = [weak] {
            if (auto strong = weak.lock()) {
                asio::post(strong->timer.get_executor(), [strong] {
                    strong->closed = true;
                    strong->timer.cancel();
                    Drop(*strong, false);
                });
            }
        };
        return true;
    }

    void Unregister(std::size_t number) {
        std::lock_guard lock(mutex);
        closers.erase(number);
    }

    asio::awaitable<void> Session(std::shared_ptr<Connection> connection) {
        try {
            if (connection->secure) {
                connection->Lowest().expires_after(kHandshakeTimeout);
                auto [ec] = co_await connection->secure->async_handshake(
                    asio::ssl::stream_base::server, asio::as_tuple(asio::use_awaitable));
                if (!ec) co_await Serve(connection, *connection->secure);
            } else {
                co_await Serve(connection, *connection->plain);
            }
        } catch (const std::exception& e) {
            std::fprintf(stderr, "fake EHR: connection %zu: %s\n", connection->number, e.what());
        }
        Drop(*connection, false);
        Unregister(connection->number);
    }

    template <class Stream>
    asio::awaitable<void> Serve(std::shared_ptr<Connection> connection, Stream& stream) {
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::string_body> parser;
            parser.body_limit(options.body_limit);
            connection->Lowest().expires_after(options.idle_timeout);
            auto [read_ec, read_bytes] = co_await http::async_read(
                stream, buffer, parser, asio::as_tuple(asio::use_awaitable));
            if (read_ec) co_return;  // closed by the client, idle, malformed or too large
            connection->Lowest().expires_never();
            http::request<http::string_body> request = parser.release();

            Classified classified = Classify(request.method_string(), request.target());
            auto [index, fault] = Admit(request, classified, connection->number);

            Response response;
            if (fault && fault->action == FaultAction::kRespond) {
                response = Response{fault->status, fault->body, fault->headers};
            } else if (fault && (fault->action == FaultAction::kReset ||
                                 fault->action == FaultAction::kClose)) {
                Drop(*connection, fault->action == FaultAction::kReset);
                co_return;
            } else if (fault && fault->action == FaultAction::kStall) {
                co_await Sleep(*connection, std::chrono::steady_clock::duration::max());
                co_return;
            } else {
                std::optional<Response> processed =
                    co_await Process(request, classified, *connection);
                if (!processed) co_return;  // stopped while processing
                response = std::move(*processed);
                if (fault && fault->action == FaultAction::kCommitThenReset) {
                    Drop(*connection, true);
                    co_return;
                }
                if (fault && fault->action == FaultAction::kDelay &&
                    !co_await Sleep(*connection, fault->delay)) {
                    co_return;
                }
            }
            SetStatus(index, response.status);

            http::response<http::string_body> message;
            message.version(request.version());
            message.result(response.status);
            message.set(http::field::server, "microcare-fake-ehr");
            if (!response.body.empty()) message.set(http::field::content_type, kFhirJson);
            for (const auto& [name, value] : response.headers) message.set(name, value);
            message.body() = std::move(response.body);
            message.keep_alive(request.keep_alive());
            message.prepare_payload();
            connection->Lowest().expires_after(kWriteTimeout);
            auto [write_ec, write_bytes] =
                co_await http::async_write(stream, message, asio::as_tuple(asio::use_awaitable));
            if (write_ec || !message.keep_alive()) co_return;
        }
    }

    Classified Classify(std::string_view method, std::string_view target) const {
        Classified c;
        const std::size_t question = target.find('?');
        std::string_view path = target.substr(0, question);
        if (question != std::string_view::npos) c.query = std::string(target.substr(question + 1));
        const std::string_view base = options.base_path;
        if (!base.empty()) {
            if (path == base) {
                path = {};
            } else if (path.starts_with(base) && path.size() > base.size() &&
                       path[base.size()] == '/') {
                path.remove_prefix(base.size());
            } else {
                c.in_base = false;
            }
        }
        while (path.starts_with('/')) path.remove_prefix(1);
        while (path.ends_with('/')) path.remove_suffix(1);
        c.path = std::string(path);
        if (!c.in_base) return c;

        std::vector<std::string_view> segments;
        if (!path.empty()) segments = Split(path, '/');
        if (!segments.empty() && IsResourceTypeName(segments[0])) c.type = segments[0];
        if (segments.size() >= 2) c.id = segments[1];

        const bool typed = !c.type.empty();
        if (method == "GET") {
            if (segments.size() == 1 && segments[0] == "metadata") {
                c.kind = RequestKind::kMetadata;
            } else if (segments.size() == 1 && typed) {
                c.kind = RequestKind::kSearch;
            } else if (segments.size() == 2 && typed) {
                c.kind = RequestKind::kRead;
            }
        } else if (method == "POST") {
            if (segments.empty()) {
                c.kind = RequestKind::kTransaction;
            } else if (segments.size() == 1 && typed) {
                c.kind = RequestKind::kCreate;
            } else if (segments.size() == 2 && typed && segments[1] == "_search") {
                c.kind = RequestKind::kSearch;
                c.id.clear();
            }
        } else if (method == "PUT") {
            if (segments.size() == 2 && typed) c.kind = RequestKind::kUpdate;
        }
        return c;
    }

    // Records the request and picks the fault that applies to it.
    std::pair<std::size_t, std::optional<Fault>> Admit(
        const http::request<http::string_body>& request, const Classified& classified,
        std::size_t connection) {
        ReceivedRequest received;
        received.method = std::string(request.method_string());
        received.target = std::string(request.target());
        received.path = classified.path;
        received.query = classified.query;
        received.kind = classified.kind;
        received.resource_type = classified.type;
        received.body = request.body();
        received.connection = connection;
        for (const auto& field : request) {
            std::string name(field.name_string());
            std::transform(name.begin(), name.end(), name.begin(),
                           [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            received.headers.emplace_back(std::move(name), std::string(field.value()));
        }
        const std::string relative =
            classified.path + (classified.query.empty() ? "" : "?" + classified.query);

        std::lock_guard lock(mutex);
        std::optional<Fault> fault;
        for (FaultRule& rule : faults) {
            if (rule.remaining == 0) continue;
            if (!rule.method.empty() && rule.method != "*" && rule.method != received.method) {
                continue;
            }
            if (!classified.in_base || !relative.starts_with(rule.prefix)) continue;
            if (!rule.fault.only_if_body_contains.empty() &&
                received.body.find(rule.fault.only_if_body_contains) == std::string::npos) {
                continue;
            }
            --rule.remaining;
            fault = rule.fault;
            break;
        }
        if (fault) received.fault = fault->action;
        requests.push_back(std::move(received));
        return {requests.size() - 1, fault};
    }

    void SetStatus(std::size_t index, unsigned status) {
        std::lock_guard lock(mutex);
        if (index < requests.size()) requests[index].status = status;
    }

    // ---- FHIR ----

    // nullopt when the server stopped in the middle.
    asio::awaitable<std::optional<Response>> Process(
        const http::request<http::string_body>& request, const Classified& c,
        Connection& connection) {
        if (!c.in_base)
            co_return Error(404, "not-found", "not under the FHIR base " + options.base_path);
        const bool representation = PrefersRepresentation(request);
        switch (c.kind) {
            case RequestKind::kMetadata:
                co_return Json(200, CapabilityStatement());
            case RequestKind::kRead:
                co_return Read(c.type, c.id);
            case RequestKind::kSearch:
                co_return SearchResponse(
                    c.type, request.method() == http::verb::post ? request.body() : c.query);
            case RequestKind::kCreate: {
                auto if_none_exist = request.find("If-None-Exist");
                co_return Create(c.type, request.body(),
                                 if_none_exist == request.end()
                                     ? std::string{}
                                     : std::string(if_none_exist->value()));
            }
            case RequestKind::kUpdate:
                co_return Update(c.type, c.id, request.body());
            case RequestKind::kTransaction:
                co_return co_await Transaction(request.body(), representation, connection);
            case RequestKind::kOther:
                break;
        }
        if (request.method() != http::verb::get && request.method() != http::verb::post &&
            request.method() != http::verb::put) {
            co_return Error(405, "not-supported",
                            "method " + std::string(request.method_string()) + " not supported");
        }
        co_return Error(404, "not-supported",
                        "no such interaction: " + std::string(request.method_string()) + " " +
                            std::string(request.target()));
    }

    static bool PrefersRepresentation(const http::request<http::string_body>& request) {
        auto prefer = request.find("Prefer");
        return prefer != request.end() &&
               prefer->value().find("return=representation") != std::string_view::npos;
    }

    std::string CapabilityStatement() const {
        fhir::JsonWriter out;
        out.StartObject();
        out.Field("resourceType", "CapabilityStatement");
        out.Field("status", "active");
        out.Field("date", "2026-01-01");
        out.Field("kind", "instance");
        out.Field("fhirVersion", "4.0.1");
        out.Key("format");
        out.StartArray();
        out.String("json");
        out.EndArray();
        out.Key("rest");
        out.StartArray();
        out.StartObject();
        out.Field("mode", "server");
        out.Key("interaction");
        out.StartArray();
        out.StartObject();
        out.Field("code", "transaction");
        out.EndObject();
        out.EndArray();
        out.EndObject();
        out.EndArray();
        out.EndObject();
        return out.Take();
    }

    Response Read(const std::string& type, const std::string& id) {
        std::lock_guard lock(mutex);
        const Stored* stored = Find(type, id);
        if (stored == nullptr) return Error(404, "not-found", type + "/" + id + " is not known");
        Response response = Json(200, stored->json);
        response.headers.emplace_back("ETag", "W/\"" + std::to_string(stored->version) + "\"");
        return response;
    }

    const Stored* Find(std::string_view type, std::string_view id) const {
        auto by_type = store.find(type);
        if (by_type == store.end()) return nullptr;
        auto it = by_type->second.find(id);
        return it == by_type->second.end() ? nullptr : &it->second;
    }

    // The matches of a search in the order stored. Called with the mutex held.
    std::vector<std::pair<std::string_view, const Stored*>> MatchLocked(
        std::string_view type, const Params& filters) const {
        std::vector<std::pair<std::string_view, const Stored*>> matches;
        auto by_type = store.find(type);
        if (by_type == store.end()) return matches;
        if (auto candidates = CandidatesLocked(type, filters)) {
            for (const std::string& id : *candidates) {
                auto it = by_type->second.find(id);
                if (it != by_type->second.end() && Matches(it->second.doc.Root(), filters)) {
                    matches.emplace_back(it->first, &it->second);
                }
            }
        } else {
            for (const auto& [id, stored] : by_type->second) {
                if (Matches(stored.doc.Root(), filters)) matches.emplace_back(id, &stored);
            }
        }
        std::sort(matches.begin(), matches.end(), [](const auto& a, const auto& b) {
            return a.second->sequence < b.second->sequence;
        });
        return matches;
    }

    Response SearchResponse(const std::string& type, std::string_view query) {
        SearchSpec spec;
        if (auto error = ParseSearch(query, options.ignore_unknown_search_params, spec)) {
            return Error(400, "not-supported", *error);
        }
        const std::size_t count =
            std::min(spec.count.value_or(options.default_page_size), options.max_page_size);
        const std::string base = BaseUrl();
        std::lock_guard lock(mutex);
        const auto matches = MatchLocked(type, spec.filters);
        fhir::JsonWriter out;
        out.StartObject();
        out.Field("resourceType", "Bundle");
        out.Field("type", "searchset");
        out.Key("total");
        out.Int(static_cast<long long>(matches.size()));
        out.Key("link");
        out.StartArray();
        out.StartObject();
        out.Field("relation", "self");
        out.Field("url", base + "/" + type + (query.empty() ? "" : "?") + std::string(query));
        out.EndObject();
        if (count > 0 && spec.offset + count < matches.size()) {
            std::string next = QueryWithoutPaging(query);
            if (!next.empty()) next.push_back('&');
            next += "_count=" + std::to_string(count) +
                    "&_offset=" + std::to_string(spec.offset + count);
            out.StartObject();
            out.Field("relation", "next");
            out.Field("url", base + "/" + type + "?" + next);
            out.EndObject();
        }
        out.EndArray();
        out.Key("entry");
        out.StartArray();
        for (std::size_t i = spec.offset; i < matches.size() && i < spec.offset + count; ++i) {
            out.StartObject();
            out.Field("fullUrl", base + "/" + type + "/" + std::string(matches[i].first));
            out.Key("resource");
            out.Value(matches[i].second->doc.Root());
            out.Key("search");
            out.StartObject();
            out.Field("mode", "match");
            out.EndObject();
            out.EndObject();
        }
        // _include: the resources the page's matches point at through the named element
        // (`medication` → medicationReference), each once.
        std::vector<std::string> included;
        for (std::size_t i = spec.offset; i < matches.size() && i < spec.offset + count; ++i) {
            for (const std::string& element : spec.includes) {
                std::string_view target =
                    matches[i].second->doc.Root()[element + "Reference"]["reference"].String();
                auto slash = target.find('/');
                if (slash == std::string_view::npos) continue;
                std::string key(target);
                if (std::find(included.begin(), included.end(), key) != included.end()) continue;
                auto by_type = store.find(std::string(target.substr(0, slash)));
                if (by_type == store.end()) continue;
                auto found = by_type->second.find(target.substr(slash + 1));
                if (found == by_type->second.end()) continue;
                included.push_back(key);
                out.StartObject();
                out.Field("fullUrl", base + "/" + key);
                out.Key("resource");
                out.Value(found->second.doc.Root());
                out.Key("search");
                out.StartObject();
                out.Field("mode", "include");
                out.EndObject();
                out.EndObject();
            }
        }
        out.EndArray();
        out.EndObject();
        return Json(200, out.Take());
    }

    std::string NextId() { return "fake-" + std::to_string(++next_id); }

    // Stores a resource; called with the mutex held. Returns the version stored.
    int StoreLocked(std::string_view type, std::string_view id, fhir::Node resource,
                    const RefMap& refs, bool keep_version) {
        TypeStore& by_type = store[std::string(type)];
        auto existing = by_type.find(id);
        const int version = existing == by_type.end() ? 1 : existing->second.version + 1;
        Stored stored;
        stored.last_updated = Now();
        stored.json = WriteStored(resource, id, version, stored.last_updated, refs, keep_version);
        stored.doc = ParseOrThrow(stored.json);
        stored.version = version;
        if (keep_version) {
            const fhir::Node meta = stored.doc.Root()["meta"];
            if (auto number = ParseCount(meta["versionId"].String())) {
                stored.version = static_cast<int>(*number);
            }
            stored.last_updated = std::string(meta["lastUpdated"].String());
        }
        stored.sequence = ++next_sequence;
        const int stored_version = stored.version;
        IndexLocked(type, id, existing == by_type.end() ? nullptr : &existing->second, stored);
        by_type.insert_or_assign(std::string(id), std::move(stored));
        return stored_version;
    }

    // 201 (or 200 for a conditional create that matched) with the resource and Location.
    Response Created(std::string_view type, std::string_view id, bool created) {
        const Stored* stored = Find(type, id);
        Response response = Json(created ? 201 : 200, stored->json);
        response.headers.emplace_back("Location", BaseUrl() + "/" + std::string(type) + "/" +
                                                      std::string(id) + "/_history/" +
                                                      std::to_string(stored->version));
        response.headers.emplace_back("ETag", "W/\"" + std::to_string(stored->version) + "\"");
        return response;
    }

    // Checks a resource sent to `type`: an error response when it is not one.
    static std::optional<Response> CheckResource(fhir::Node resource, std::string_view type,
                                                 std::string_view path) {
        if (!resource.IsObject()) {
            return Error(400, "structure", "a resource is required", path);
        }
        if (resource["resourceType"].String() != type) {
            return Error(400, "invalid",
                         "resourceType '" + std::string(resource["resourceType"].String()) +
                             "' does not match '" + std::string(type) + "'",
                         path);
        }
        return std::nullopt;
    }

    Response Create(const std::string& type, const std::string& body,
                    const std::string& if_none_exist) {
        fhir::IssueList issues;
        std::optional<fhir::JsonDocument> doc = fhir::JsonDocument::Parse(body, issues);
        if (!doc) return Error(400, "structure", ParseFailure(issues));
        if (auto bad = CheckResource(doc->Root(), type, type)) return *bad;
        std::vector<std::string_view> references;
        CollectReferences(doc->Root(), references);
        for (std::string_view reference : references) {
            if (reference.starts_with("urn:")) {
                return Error(400, "invalid",
                             "unresolvable reference '" + std::string(reference) + "'");
            }
        }
        SearchSpec condition;
        if (!if_none_exist.empty()) {
            std::string_view query = if_none_exist;
            if (const std::size_t q = query.find('?'); q != std::string_view::npos) {
                query.remove_prefix(q + 1);
            }
            if (auto error = ParseSearch(query, false, condition)) {
                return Error(400, "invalid", "If-None-Exist: " + *error);
            }
        }
        std::lock_guard lock(mutex);
        if (!if_none_exist.empty()) {
            const auto matches = MatchLocked(type, condition.filters);
            if (matches.size() > 1) {
                return Error(
                    412, "duplicate",
                    "If-None-Exist matched " + std::to_string(matches.size()) + " resources");
            }
            if (matches.size() == 1) return Created(type, matches[0].first, false);
        }
        const std::string id = NextId();
        StoreLocked(type, id, doc->Root(), {}, false);
        return Created(type, id, true);
    }

    Response Update(const std::string& type, const std::string& id, const std::string& body) {
        fhir::IssueList issues;
        std::optional<fhir::JsonDocument> doc = fhir::JsonDocument::Parse(body, issues);
        if (!doc) return Error(400, "structure", ParseFailure(issues));
        if (auto bad = CheckResource(doc->Root(), type, type)) return *bad;
        const fhir::Node given_id = doc->Root()["id"];
        if (!given_id.IsString() || given_id.String() != id) {
            return Error(400, "invalid", "resource id must match the URL", type + ".id");
        }
        std::lock_guard lock(mutex);
        const bool existed = Find(type, id) != nullptr;
        StoreLocked(type, id, doc->Root(), {}, false);
        return Created(type, id, !existed);
    }

    struct PlannedEntry {
        std::string method;  // POST or PUT
        std::string type;
        std::string id;
        std::string full_url;
        std::string if_none_exist;
        std::string if_match;  // PUT: W/"version" it must land on
        SearchSpec condition;
        fhir::Node resource;
        bool create = true;  // false: a conditional create that matched
        int version = 1;
    };

    // A batch of reads and searches (what MicroCare sends to read a record in one round trip):
    // each entry answered as if it had come alone, in a batch-response.
    Response Batch(fhir::Node bundle) {
        const fhir::Node entries = bundle["entry"];
        std::string out = R"({"resourceType":"Bundle","type":"batch-response","entry":[)";
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            const std::string method(entries[i]["request"]["method"].String());
            const std::string url(entries[i]["request"]["url"].String());
            if (method == "POST" && url.find_first_of("/?") == std::string::npos) {
                // A create of its own (AuditEvents after a transaction), conditional or not.
                fhir::JsonWriter resource;
                resource.Value(entries[i]["resource"]);
                const Response created =
                    Create(url, resource.Take(),
                           std::string(entries[i]["request"]["ifNoneExist"].String()));
                std::string location;
                for (const auto& [name, value] : created.headers) {
                    if (name == "Location") location = value;
                }
                out += i ? ",{" : "{";
                out += R"("response":{"status":")" + std::to_string(created.status) +
                       R"(","location":")" + location + R"("}})";
                continue;
            }
            if (method != "GET") {
                return Error(400, "not-supported", "this fake answers batch GETs and creates only",
                             "Bundle.entry[" + std::to_string(i) + "].request.method");
            }
            const auto question = url.find('?');
            const auto slash = url.find('/');
            Response answer = question != std::string::npos
                                  ? SearchResponse(url.substr(0, question),
                                                   std::string_view(url).substr(question + 1))
                              : slash != std::string::npos
                                  ? Read(url.substr(0, slash), url.substr(slash + 1))
                                  : SearchResponse(url, "");
            out += i ? ",{" : "{";
            out += R"("resource":)" + answer.body + R"(,"response":{"status":")" +
                   std::to_string(answer.status) + R"("}})";
        }
        out += "]}";
        return Json(200, out);
    }

    asio::awaitable<std::optional<Response>> Transaction(const std::string& body,
                                                         bool representation,
                                                         Connection& connection) {
        fhir::IssueList issues;
        std::optional<fhir::JsonDocument> doc = fhir::JsonDocument::Parse(body, issues);
        if (!doc) co_return Error(400, "structure", ParseFailure(issues));
        const fhir::Node bundle = doc->Root();
        if (bundle["resourceType"].String() != "Bundle") {
            co_return Error(400, "invalid", "POST to the base needs a Bundle", "Bundle");
        }
        if (bundle["type"].String() == "batch") co_return Batch(bundle);
        if (bundle["type"].String() != "transaction") {
            co_return Error(400, "not-supported",
                            "only transaction and batch Bundles are supported, not '" +
                                std::string(bundle["type"].String()) + "'",
                            "Bundle.type");
        }

        // Check every entry before anything is stored: a transaction is all or nothing.
        const fhir::Node entries = bundle["entry"];
        if (entries.Exists() && !entries.IsArray()) {
            co_return Error(400, "structure", "Bundle.entry must be an array", "Bundle.entry");
        }
        std::vector<PlannedEntry> plan;
        std::set<std::string, std::less<>> full_urls;
        for (std::size_t i = 0; i < entries.Size(); ++i) {
            const fhir::Node entry = entries[i];
            const std::string path = "Bundle.entry[" + std::to_string(i) + "]";
            PlannedEntry planned;
            planned.method = std::string(entry["request"]["method"].String());
            const std::string url(entry["request"]["url"].String());
            planned.full_url = std::string(entry["fullUrl"].String());
            planned.resource = entry["resource"];
            if (planned.method == "POST") {
                if (!IsResourceTypeName(url)) {
                    co_return Error(400, "not-supported",
                                    "POST entries need a resource type as url, not '" + url + "'",
                                    path + ".request.url");
                }
                planned.type = url;
                planned.if_none_exist = std::string(entry["request"]["ifNoneExist"].String());
                if (!planned.if_none_exist.empty()) {
                    std::string_view query = planned.if_none_exist;
                    if (const std::size_t q = query.find('?'); q != std::string_view::npos) {
                        query.remove_prefix(q + 1);
                    }
                    if (auto error = ParseSearch(query, false, planned.condition)) {
                        co_return Error(400, "invalid", "ifNoneExist: " + *error,
                                        path + ".request.ifNoneExist");
                    }
                }
            } else if (planned.method == "PUT") {
                const std::vector<std::string_view> parts = Split(url, '/');
                if (parts.size() != 2 || !IsResourceTypeName(parts[0]) || parts[1].empty()) {
                    co_return Error(400, "not-supported",
                                    "PUT entries need [type]/[id] as url, not '" + url + "'",
                                    path + ".request.url");
                }
                planned.type = std::string(parts[0]);
                planned.id = std::string(parts[1]);
                planned.if_match = std::string(entry["request"]["ifMatch"].String());
            } else {
                co_return Error(400, "not-supported",
                                "request.method '" + planned.method + "' is not supported here",
                                path + ".request.method");
            }
            if (auto bad = CheckResource(planned.resource, planned.type, path + ".resource")) {
                co_return *bad;
            }
            if (!planned.full_url.empty() && !full_urls.insert(planned.full_url).second) {
                co_return Error(400, "invalid", "duplicate fullUrl " + planned.full_url,
                                path + ".fullUrl");
            }
            plan.push_back(std::move(planned));
        }
        for (std::size_t i = 0; i < plan.size(); ++i) {
            std::vector<std::string_view> references;
            CollectReferences(plan[i].resource, references);
            for (std::string_view reference : references) {
                if (reference.starts_with("urn:") && !full_urls.contains(reference)) {
                    co_return Error(
                        400, "invalid",
                        "reference '" + std::string(reference) + "' matches no entry's fullUrl",
                        "Bundle.entry[" + std::to_string(i) + "].resource");
                }
            }
        }

        const std::size_t now_in_flight = ++in_flight_transactions;
        std::size_t seen = max_in_flight_transactions.load();
        while (now_in_flight > seen &&
               !max_in_flight_transactions.compare_exchange_weak(seen, now_in_flight)) {
        }
        struct Leave {
            std::atomic<std::size_t>& counter;
            ~Leave() { --counter; }
        } leave{in_flight_transactions};

        bool race = false;
        std::chrono::milliseconds delay{0};
        {
            std::lock_guard lock(mutex);
            race = options.race_conditional_creates;
            delay = options.transaction_delay;
        }
        if (!race && delay.count() > 0 && !co_await Sleep(connection, delay))
            co_return std::nullopt;

        RefMap refs;
        {
            std::unique_lock lock(mutex);
            if (auto failure = ResolveLocked(plan, refs)) co_return *failure;
            if (race) {
                // The window between the check and the store that a serialising server closes.
                lock.unlock();
                if (delay.count() > 0) {
                    if (!co_await Sleep(connection, delay)) co_return std::nullopt;
                } else {
                    co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
                }
                lock.lock();
            }
            for (PlannedEntry& planned : plan) {
                if (planned.create) {
                    planned.version =
                        StoreLocked(planned.type, planned.id, planned.resource, refs, false);
                }
            }
        }

        std::lock_guard lock(mutex);
        fhir::JsonWriter out;
        out.StartObject();
        out.Field("resourceType", "Bundle");
        out.Field("type", "transaction-response");
        out.Key("entry");
        out.StartArray();
        for (const PlannedEntry& planned : plan) {
            const Stored* stored = Find(planned.type, planned.id);
            const bool created = planned.create && planned.version == 1;
            out.StartObject();
            if (representation && stored != nullptr) {
                out.Key("resource");
                out.Value(stored->doc.Root());
            }
            out.Key("response");
            out.StartObject();
            out.Field("status", created ? "201 Created" : "200 OK");
            if (stored != nullptr) {
                out.Field("location", planned.type + "/" + planned.id + "/_history/" +
                                          std::to_string(stored->version));
                out.Field("etag", "W/\"" + std::to_string(stored->version) + "\"");
                out.Field("lastModified", stored->last_updated);
            }
            out.EndObject();
            out.EndObject();
        }
        out.EndArray();
        out.EndObject();
        co_return Json(200, out.Take());
    }

    // Decides create or match for each entry and maps fullUrls to "Type/id". Mutex held.
    std::optional<Response> ResolveLocked(std::vector<PlannedEntry>& plan, RefMap& refs) {
        for (std::size_t i = 0; i < plan.size(); ++i) {
            PlannedEntry& planned = plan[i];
            if (planned.method == "PUT" && !planned.if_match.empty()) {
                // Optimistic locking: the whole transaction fails when another writer moved on.
                const Stored* stored = Find(planned.type, planned.id);
                if (stored == nullptr ||
                    planned.if_match != "W/\"" + std::to_string(stored->version) + "\"") {
                    return Error(412, "conflict",
                                 "ifMatch " + planned.if_match + " is not the current version",
                                 "Bundle.entry[" + std::to_string(i) + "].request.ifMatch");
                }
            }
            if (planned.method == "POST" && !planned.if_none_exist.empty()) {
                const auto matches = MatchLocked(planned.type, planned.condition.filters);
                if (matches.size() > 1) {
                    return Error(
                        412, "duplicate",
                        "ifNoneExist matched " + std::to_string(matches.size()) + " resources",
                        "Bundle.entry[" + std::to_string(i) + "].request.ifNoneExist");
                }
                if (matches.size() == 1) {
                    planned.create = false;
                    planned.id = std::string(matches[0].first);
                }
            }
            if (planned.create && planned.method == "POST") planned.id = NextId();
            if (!planned.full_url.empty()) refs[planned.full_url] = planned.type + "/" + planned.id;
        }
        return std::nullopt;
    }

    // ---- State ----

    FakeEhrOptions options;
    asio::io_context io;
    tcp::acceptor acceptor;
    std::uint16_t port = 0;
    std::vector<std::thread> threads;
    std::mutex stop_mutex;

    mutable std::mutex mutex;  // everything below
    std::condition_variable threads_done;
    std::size_t running = 0;
    bool stopping = false;
    std::map<std::size_t, std::function<void()>> closers;
    std::optional<asio::executor_work_guard<asio::io_context::executor_type>> refusing;
    std::map<std::string, TypeStore, std::less<>> store;
    // Search keys -> ids per type, so that a search by patient, identifier or exact entity
    // name (the searches MicroCare makes) touches only its candidates: "the fast fake EHR" of the
    // load driver. Candidates are still checked with Matches(); the index only narrows.
    std::map<std::string, std::unordered_map<std::string, std::set<std::string>>, std::less<>> keys;

    static std::vector<std::string> KeysOf(fhir::Node resource) {
        std::vector<std::string> out;
        for (const std::string& ref :
             ReferencesOf(resource, {"subject", "patient", "for", "beneficiary"})) {
            out.push_back("ref:" + ref.substr(ref.rfind('/') + 1));
        }
        const fhir::Node identifiers = resource["identifier"];
        for (std::size_t i = 0; i < identifiers.Size(); ++i) {
            out.push_back("identifier:" + std::string(identifiers[i]["value"].String()));
        }
        const fhir::Node entities = resource["entity"];
        for (std::size_t i = 0; i < entities.Size(); ++i) {
            if (entities[i]["name"].IsString()) {
                out.push_back("entity-name:" + std::string(entities[i]["name"].String()));
            }
        }
        return out;
    }

    void IndexLocked(std::string_view type, std::string_view id, const Stored* old,
                     const Stored& now) {
        auto& by_key = keys[std::string(type)];
        if (old != nullptr) {
            for (const std::string& key : KeysOf(old->doc.Root()))
                by_key[key].erase(std::string(id));
        }
        for (const std::string& key : KeysOf(now.doc.Root())) by_key[key].insert(std::string(id));
    }

    // The ids a search could match, when one filter narrows it; nullopt to scan everything.
    std::optional<std::vector<std::string>> CandidatesLocked(std::string_view type,
                                                             const Params& filters) const {
        for (const auto& [name, value] : filters) {
            std::string key;
            if ((name == "patient" || name == "subject") && value.find(',') == std::string::npos) {
                key = "ref:" +
                      NormaliseReference(value).substr(NormaliseReference(value).rfind('/') + 1);
            } else if (name == "identifier" && value.find(',') == std::string::npos) {
                key = "identifier:" +
                      value.substr(value.find('|') == std::string::npos ? 0 : value.find('|') + 1);
            } else if (name == "entity-name:exact" && value.find(',') == std::string::npos) {
                key = "entity-name:" + value;  // the AuditEvents' conditional creates
            } else {
                continue;
            }
            std::vector<std::string> ids;
            auto by_key = keys.find(type);
            if (by_key != keys.end()) {
                auto it = by_key->second.find(key);
                if (it != by_key->second.end()) ids.assign(it->second.begin(), it->second.end());
            }
            return ids;
        }
        return std::nullopt;
    }
    std::uint64_t next_id = 0;
    std::uint64_t next_sequence = 0;
    std::vector<ReceivedRequest> requests;
    std::vector<FaultRule> faults;

    std::atomic<std::size_t> connections{0};
    std::atomic<std::size_t> in_flight_transactions{0};
    std::atomic<std::size_t> max_in_flight_transactions{0};
};

// ---- Public interface -------------------------------------------------------------------------

FakeEhr::FakeEhr(FakeEhrOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}

FakeEhr::~FakeEhr() { Stop(); }

void FakeEhr::Stop() { impl_->Stop(); }

void FakeEhr::RefuseConnections() { impl_->RefuseConnections(); }

void FakeEhr::AcceptConnections() { impl_->AcceptConnections(); }

std::uint16_t FakeEhr::port() const { return impl_->port; }

std::string FakeEhr::BaseUrl() const { return impl_->BaseUrl(); }

std::size_t FakeEhr::Load(const std::string& bundle_json) {
    const fhir::JsonDocument doc = ParseOrThrow(bundle_json);
    const fhir::Node bundle = doc.Root();
    if (bundle["resourceType"].String() != "Bundle") {
        throw std::invalid_argument("Load needs a Bundle");
    }
    const fhir::Node entries = bundle["entry"];
    if (entries.Exists() && !entries.IsArray()) throw std::invalid_argument("Bundle.entry");
    std::lock_guard lock(impl_->mutex);
    RefMap refs;
    std::vector<std::pair<std::string, std::string>> ids;  // type, id per entry
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        const fhir::Node resource = entries[i]["resource"];
        const std::string type(resource["resourceType"].String());
        if (!IsResourceTypeName(type)) {
            throw std::invalid_argument("Bundle.entry[" + std::to_string(i) +
                                        "].resource has no resourceType");
        }
        std::string id(resource["id"].String());
        if (id.empty()) id = impl_->NextId();
        if (entries[i]["fullUrl"].IsString()) {
            refs[std::string(entries[i]["fullUrl"].String())] = type + "/" + id;
        }
        ids.emplace_back(type, std::move(id));
    }
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        impl_->StoreLocked(ids[i].first, ids[i].second, entries[i]["resource"], refs, true);
    }
    return entries.Size();
}

std::string FakeEhr::Put(const std::string& resource_json) {
    const fhir::JsonDocument doc = ParseOrThrow(resource_json);
    const std::string type(doc.Root()["resourceType"].String());
    if (!IsResourceTypeName(type)) throw std::invalid_argument("Put needs a resource");
    std::lock_guard lock(impl_->mutex);
    std::string id(doc.Root()["id"].String());
    if (id.empty()) id = impl_->NextId();
    impl_->StoreLocked(type, id, doc.Root(), {}, true);
    return type + "/" + id;
}

std::optional<std::string> FakeEhr::Get(std::string_view type, std::string_view id) const {
    std::lock_guard lock(impl_->mutex);
    const Impl::Stored* stored = impl_->Find(type, id);
    if (stored == nullptr) return std::nullopt;
    return stored->json;
}

std::vector<std::string> FakeEhr::All(std::string_view type) const { return Search(type, {}); }

std::vector<std::string> FakeEhr::Search(std::string_view type, std::string_view query) const {
    SearchSpec spec;
    if (auto error = ParseSearch(query, false, spec)) throw std::invalid_argument(*error);
    std::lock_guard lock(impl_->mutex);
    std::vector<std::string> out;
    for (const auto& [id, stored] : impl_->MatchLocked(type, spec.filters)) {
        out.push_back(stored->json);
    }
    return out;
}

std::size_t FakeEhr::Count(std::string_view type) const {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->store.find(type);
    return it == impl_->store.end() ? 0 : it->second.size();
}

void FakeEhr::Clear() {
    std::lock_guard lock(impl_->mutex);
    impl_->store.clear();
    impl_->keys.clear();
}

std::vector<ReceivedRequest> FakeEhr::Requests() const {
    std::lock_guard lock(impl_->mutex);
    return impl_->requests;
}

std::size_t FakeEhr::RequestCount(std::string_view method, RequestKind kind,
                                  std::string_view resource_type) const {
    std::lock_guard lock(impl_->mutex);
    return static_cast<std::size_t>(std::count_if(
        impl_->requests.begin(), impl_->requests.end(), [&](const ReceivedRequest& r) {
            return r.method == method && r.kind == kind &&
                   (resource_type.empty() || r.resource_type == resource_type);
        }));
}

void FakeEhr::ClearRequests() {
    std::lock_guard lock(impl_->mutex);
    impl_->requests.clear();
}

std::size_t FakeEhr::MaxConcurrentTransactions() const {
    return impl_->max_in_flight_transactions.load();
}

void FakeEhr::InjectFault(std::string_view method, std::string_view path_prefix, Fault fault,
                          std::size_t times) {
    std::string_view prefix = path_prefix;
    while (prefix.starts_with('/')) prefix.remove_prefix(1);
    std::string_view base = impl_->options.base_path;
    while (base.starts_with('/')) base.remove_prefix(1);
    if (!base.empty() && prefix.starts_with(base) &&
        (prefix.size() == base.size() || prefix[base.size()] == '/' ||
         prefix[base.size()] == '?')) {
        prefix.remove_prefix(base.size());
        while (prefix.starts_with('/')) prefix.remove_prefix(1);
    }
    std::lock_guard lock(impl_->mutex);
    impl_->faults.push_back(
        Impl::FaultRule{std::string(method), std::string(prefix), std::move(fault), times});
}

void FakeEhr::ClearFaults() {
    std::lock_guard lock(impl_->mutex);
    impl_->faults.clear();
}

std::size_t FakeEhr::PendingFaults() const {
    std::lock_guard lock(impl_->mutex);
    std::size_t pending = 0;
    for (const auto& rule : impl_->faults) pending += rule.remaining;
    return pending;
}

void FakeEhr::SetRaceMode(bool race, std::chrono::milliseconds transaction_delay) {
    std::lock_guard lock(impl_->mutex);
    impl_->options.race_conditional_creates = race;
    impl_->options.transaction_delay = transaction_delay;
}

}  // namespace microcare::testing
