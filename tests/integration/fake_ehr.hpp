#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace microcare::testing {

// How FakeEhr classified a request (the "path kind" that requests are counted by).
enum class RequestKind {
    kRead,         // GET [type]/[id]
    kSearch,       // GET [type]?..., POST [type]/_search
    kTransaction,  // POST [base] with a Bundle
    kCreate,       // POST [type]
    kUpdate,       // PUT [type]/[id]
    kMetadata,     // GET metadata
    kOther,        // anything else (answered 404/405 with an OperationOutcome)
};
std::string_view ToString(RequestKind kind);

// What the fake does instead of (or besides) answering normally.
enum class FaultAction {
    kRespond,          // answer `status` with `body` and `headers`; nothing is processed
    kReset,            // read the request, then reset the connection (RST) without answering
    kClose,            // read the request, then close the connection (FIN) without answering
    kStall,            // read the request and never answer, until Stop()
    kCommitThenReset,  // process the request fully (store what it writes), then reset
    kDelay,            // process the request normally, but answer only after `delay`
};

struct Fault {
    FaultAction action = FaultAction::kRespond;
    unsigned status = 500;
    std::string body;  // sent as application/fhir+json when not empty
    std::vector<std::pair<std::string, std::string>> headers;
    std::chrono::milliseconds delay{0};
    // When set, only requests whose body contains this text get the fault ("\"transaction\""
    // tells a transaction from a batch of reads, both POSTed to the base).
    std::string only_if_body_contains;

    Fault OnlyIfBody(std::string text) const {
        Fault copy = *this;
        copy.only_if_body_contains = std::move(text);
        return copy;
    }

    // A response with that status and body, nothing processed.
    static Fault Status(unsigned status, std::string body = {});
    // 500 with an OperationOutcome (code "exception").
    static Fault ServerError();
    // 503 with an OperationOutcome (code "transient").
    static Fault Unavailable();
    // 429 with `Retry-After: <seconds>` and an OperationOutcome (code "throttled").
    static Fault TooManyRequests(int retry_after_seconds = 1);
    // `status` (400, 412, 422, ...) with an OperationOutcome: one error issue with that code.
    static Fault Outcome(unsigned status, std::string_view issue_code,
                         std::string_view diagnostics);
    static Fault Reset();
    static Fault Close();
    static Fault Stall();
    static Fault CommitThenReset();
    static Fault Delay(std::chrono::milliseconds delay);
};

// One request as the fake received it.
struct ReceivedRequest {
    std::string method;  // "GET"
    std::string target;  // as sent: "/fhir/Condition?patient=Patient%2F1"
    std::string path;    // relative to the base, without the query: "Condition"
    std::string query;   // raw query text, without '?'
    RequestKind kind = RequestKind::kOther;
    std::string resource_type;  // "Condition"; empty for the base
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
    std::optional<FaultAction> fault;                          // the fault applied to it, if any
    unsigned status = 0;         // the status answered; 0 when none was sent
    std::size_t connection = 0;  // 1, 2, ... in accept order: shows keep-alive reuse

    std::optional<std::string> Header(std::string_view lower_case_name) const;
};

struct FakeEhrOptions {
    // The FHIR base is http(s)://127.0.0.1:<port><base_path>.
    std::string base_path = "/fhir";
    std::size_t threads = 2;
    // Page size of a search without _count.
    std::size_t default_page_size = 50;
    std::size_t max_page_size = 1000;
    // Race mode: conditional creates are NOT serialised. A transaction checks its ifNoneExist
    // conditions, waits `transaction_delay` (yields at least once), then stores: two
    // transactions in flight at once may both create. When false (a well-behaved server), the
    // check and the store are one atomic step, taken after `transaction_delay`.
    bool race_conditional_creates = false;
    std::chrono::milliseconds transaction_delay{0};
    // Unknown search parameters are refused with 400 (as Medplum and HAPI do) unless set.
    bool ignore_unknown_search_params = false;
    std::size_t body_limit = 64 * 1024 * 1024;
    // A connection idle for this long between requests is closed.
    std::chrono::milliseconds idle_timeout{30000};
    // HTTPS when set; the context must outlive the FakeEhr.
    boost::asio::ssl::context* tls = nullptr;
    // meta.lastUpdated of what is stored; the system clock when empty.
    std::function<std::chrono::system_clock::time_point()> clock;
};

// An in-process fake EHR FHIR R4 server for integration tests (Envoy's FakeUpstream in spirit):
// resources in memory by type and id; read, search (patient/subject/encounter/identifier/_id/
// status, _count with Bundle.link next paging), plain and conditional create, update, and
// transaction Bundles with ifNoneExist conditional creates and urn:uuid resolution. Every
// request is recorded, and faults are injected per method and path prefix.
//
// It listens on 127.0.0.1 on an ephemeral port, with its own io_context and threads, from the
// constructor until Stop() (or the destructor): Stop stops accepting, closes every connection,
// including stalled ones, and joins the threads. All methods are thread-safe.
class FakeEhr {
public:
    explicit FakeEhr(FakeEhrOptions options = {});
    ~FakeEhr();
    FakeEhr(const FakeEhr&) = delete;
    FakeEhr& operator=(const FakeEhr&) = delete;

    // Idempotent; returns when every thread has been joined.
    void Stop();

    std::uint16_t port() const;
    // "http://127.0.0.1:<port>/fhir" (https with TLS).
    std::string BaseUrl() const;

    // ---- Data ----------------------------------------------------------------------------
    // Stores every entry.resource of a Bundle (collection, searchset, ...). Resource ids are
    // kept; a resource without one gets a new id. References to an entry's fullUrl (urn:uuid
    // or absolute) are rewritten to "Type/id". Returns the number of resources stored; throws
    // std::invalid_argument when the text is not a Bundle.
    std::size_t Load(const std::string& bundle_json);
    // Stores (or replaces) one resource; assigns an id when it has none. Returns "Type/id".
    // Throws std::invalid_argument when the text is not a resource.
    std::string Put(const std::string& resource_json);
    std::optional<std::string> Get(std::string_view type, std::string_view id) const;
    // Every stored resource of that type, in the order stored.
    std::vector<std::string> All(std::string_view type) const;
    // The resources a search `query` ("identifier=s|v&patient=Patient/1") matches, unpaged.
    // Throws std::invalid_argument for an unsupported parameter.
    std::vector<std::string> Search(std::string_view type, std::string_view query) const;
    // Number of stored resources of that type.
    std::size_t Count(std::string_view type) const;
    void Clear();

    // ---- Requests ------------------------------------------------------------------------
    std::vector<ReceivedRequest> Requests() const;
    // Requests of that method and kind, and of that resource type when one is given.
    std::size_t RequestCount(std::string_view method, RequestKind kind,
                             std::string_view resource_type = {}) const;
    void ClearRequests();
    // The most transactions that were being processed at the same time.
    std::size_t MaxConcurrentTransactions() const;

    // ---- Faults --------------------------------------------------------------------------
    // The next `times` requests whose method is `method` ("" or "*" for any) and whose target
    // relative to the base ("Encounter/e1", "Condition?patient=...", "" for the base) starts
    // with `path_prefix` get `fault` instead of the normal answer. A leading '/' and the base
    // path in `path_prefix` are ignored. Rules are tried in the order added.
    void InjectFault(std::string_view method, std::string_view path_prefix, Fault fault,
                     std::size_t times = 1);
    void ClearFaults();
    // Injected faults not yet used up.
    std::size_t PendingFaults() const;

    void SetRaceMode(bool race, std::chrono::milliseconds transaction_delay);

    // ---- Outages ---------------------------------------------------------------------------
    // The server is down: its listening socket closes, so connecting is refused, and every
    // open connection is closed. What it stores is kept.
    void RefuseConnections();
    // ... and up again, on the same port. Throws std::runtime_error if the port was taken
    // meanwhile.
    void AcceptConnections();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace microcare::testing
