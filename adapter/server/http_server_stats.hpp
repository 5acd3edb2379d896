#pragma once

#include <cstdint>

namespace microcare::adapter {

// What the server counts about connections it could not serve normally.
struct HttpServerStats {
    std::uint64_t accept_failures = 0;         // accept() errors (EMFILE, ENFILE, ...)
    std::uint64_t accept_failures_logged = 0;  // of those, how many were written to the log
    std::uint64_t connections_evicted = 0;     // closed to make room under max_connections
    std::uint64_t connections_refused = 0;     // closed at once: no room even for a probe
};

}  // namespace microcare::adapter
