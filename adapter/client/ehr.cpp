#include "adapter/client/ehr.hpp"

namespace microcare::adapter {

EhrAnswer Classify(unsigned status, bool optional_feature) {
    if (status >= 200 && status < 300) return EhrAnswer::kSuccess;
    if (optional_feature && (status == 400 || status == 404 || status == 405 || status == 415 ||
                             status == 422 || status == 501)) {
        return EhrAnswer::kUnsupported;
    }
    if (status == 408 || status == 429 || status >= 500) return EhrAnswer::kTransient;
    return EhrAnswer::kPermanent;
}

unsigned EntryStatus(std::string_view response_status) {
    unsigned status = 0;
    for (char c : response_status) {
        if (c < '0' || c > '9') break;
        status = status * 10 + static_cast<unsigned>(c - '0');
    }
    return status;
}

}  // namespace microcare::adapter
