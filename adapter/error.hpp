#pragma once

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

namespace microcare::adapter {

// "Could not run" conditions of the service, carried as values (the pattern of Beast's
// http/error.hpp). HTTP statuses from a peer are not errors: they come back as responses.
enum class Error {
    kTimeout = 1,       // a connect, handshake, read or write passed its deadline
    kConnectionFailed,  // refused, reset, closed early, name not resolved
    kTlsFailed,         // handshake or certificate verification failed
    kResponseTooLarge,  // a peer's response exceeded the configured limit
    kBadResponse,       // a peer's response was not the HTTP/FHIR it should be
    kAuthFailed,        // the token endpoint refused us, or a key could not sign
    kStoreFailed,       // SQLite refused a read or write
    kNotFound,          // no such job / record
    kConflict,          // e.g. a reused Bundle id with a new MessageHeader id
    kInvalidConfig,     // a setting is missing or wrong
    kShuttingDown,      // the service is stopping and takes no new work
    kRefusedUrl,        // a destination that is not an http(s) URL MicroCare may send to
    kAuditDamaged,      // the audit trail is damaged or disagrees with its checkpoint
    kAuditFailed,       // an audit record could not be sealed (OpenSSL failed)
};

const boost::system::error_category& ErrorCategory();

inline boost::system::error_code make_error_code(Error e) {
    return {static_cast<int>(e), ErrorCategory()};
}

template <typename T>
using Result = boost::system::result<T>;

}  // namespace microcare::adapter

template <>
struct boost::system::is_error_code_enum<microcare::adapter::Error> : std::true_type {};
