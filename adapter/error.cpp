#include "adapter/error.hpp"

namespace microcare::adapter {
namespace {

class Category final : public boost::system::error_category {
public:
    const char* name() const noexcept override { return "microcare"; }
    std::string message(int value) const override {
        switch (static_cast<Error>(value)) {
            case Error::kTimeout:
                return "timed out";
            case Error::kConnectionFailed:
                return "connection failed";
            case Error::kTlsFailed:
                return "TLS handshake or certificate verification failed";
            case Error::kResponseTooLarge:
                return "response too large";
            case Error::kBadResponse:
                return "malformed response";
            case Error::kAuthFailed:
                return "authorisation failed";
            case Error::kStoreFailed:
                return "store operation failed";
            case Error::kNotFound:
                return "not found";
            case Error::kConflict:
                return "conflict";
            case Error::kInvalidConfig:
                return "invalid configuration";
            case Error::kShuttingDown:
                return "shutting down";
            case Error::kRefusedUrl:
                return "not a destination MicroCare may send to";
            case Error::kAuditDamaged:
                return "the audit trail is damaged";
            case Error::kAuditFailed:
                return "the audit record could not be sealed";
        }
        return "unknown error";
    }
};

}  // namespace

const boost::system::error_category& ErrorCategory() {
    static const Category category;
    return category;
}

}  // namespace microcare::adapter
