#pragma once

#include <array>
#include <boost/system/error_code.hpp>
#include <cstddef>
#include <string_view>

namespace microcare::adapter {

// Why an attempt at a job met a transient failure. One classification for the two questions
// that need it: which label /metrics counts a retry under, and whether the EHR is down.
enum class FailureReason {
    kConnect,      // connection refused, reset or closed early; name not resolved
    kTimeout,      // a connect, handshake, read or write passed its deadline
    kTls,          // the TLS handshake or the certificate check failed
    kHttp5xx,      // the EHR answered 5xx
    kThrottled,    // the EHR answered 429 or 408: it is there, but not now
    kBadResponse,  // the answer was not the HTTP/FHIR it should be, or too large
    kAuth,         // the token endpoint refused us
    kOther,        // not the EHR's exchange: the store, a check that found nothing, ...
};
inline constexpr std::array kFailureReasons = {
    FailureReason::kConnect, FailureReason::kTimeout,   FailureReason::kTls,
    FailureReason::kHttp5xx, FailureReason::kThrottled, FailureReason::kBadResponse,
    FailureReason::kAuth,    FailureReason::kOther,
};

// The label value: "connect", "timeout", "tls", "http_5xx", "throttled", "bad_response",
// "auth", "other".
std::string_view ToString(FailureReason reason);

// A request that got no answer (an error from the HTTP or FHIR client).
FailureReason ReasonOf(const boost::system::error_code& error);
// An answer whose status Classify() calls transient.
FailureReason ReasonOf(unsigned status);

// Whether the reason means the EHR cannot be used at all right now (unreachable, or failing
// with 5xx), rather than that it refused, throttled or mis-answered one request.
bool IsOutage(FailureReason reason);

}  // namespace microcare::adapter
