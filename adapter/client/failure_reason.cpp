#include "adapter/client/failure_reason.hpp"

#include "adapter/error.hpp"

namespace microcare::adapter {

std::string_view ToString(FailureReason reason) {
    switch (reason) {
        case FailureReason::kConnect:
            return "connect";
        case FailureReason::kTimeout:
            return "timeout";
        case FailureReason::kTls:
            return "tls";
        case FailureReason::kHttp5xx:
            return "http_5xx";
        case FailureReason::kThrottled:
            return "throttled";
        case FailureReason::kBadResponse:
            return "bad_response";
        case FailureReason::kAuth:
            return "auth";
        case FailureReason::kOther:
            break;
    }
    return "other";
}

FailureReason ReasonOf(const boost::system::error_code& error) {
    if (error == Error::kConnectionFailed) return FailureReason::kConnect;
    if (error == Error::kTimeout) return FailureReason::kTimeout;
    if (error == Error::kTlsFailed) return FailureReason::kTls;
    if (error == Error::kBadResponse || error == Error::kResponseTooLarge) {
        return FailureReason::kBadResponse;
    }
    if (error == Error::kAuthFailed) return FailureReason::kAuth;
    return FailureReason::kOther;
}

FailureReason ReasonOf(unsigned status) {
    if (status >= 500) return FailureReason::kHttp5xx;
    if (status == 429 || status == 408) return FailureReason::kThrottled;
    return FailureReason::kOther;
}

bool IsOutage(FailureReason reason) {
    return reason == FailureReason::kConnect || reason == FailureReason::kTimeout ||
           reason == FailureReason::kTls || reason == FailureReason::kHttp5xx;
}

}  // namespace microcare::adapter
