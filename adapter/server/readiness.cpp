#include "adapter/server/readiness.hpp"

#include "fhir/date_time.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {

std::string ReadinessJson(const Readiness& readiness, const rules::PackIdentity& pack) {
    fhir::JsonWriter out;
    out.StartObject();
    out.Field("status", !readiness.ready        ? "not ready"
                        : !readiness.degraded() ? "ready"
                                                : "degraded");
    out.Key("rulePack");
    out.StartObject();
    out.Field("id", pack.id);
    out.Field("version", pack.version);
    out.Field("sha256", pack.sha256);
    out.EndObject();
    out.Field("auditTrail", readiness.audit_trail_writable ? "writable" : "failing");
    out.Field("ehr", ToString(readiness.ehr.state));
    if (readiness.ehr.last_success) {
        out.Field("ehrLastSuccess", fhir::FormatInstant(*readiness.ehr.last_success, 0));
    }
    if (readiness.poll) {
        out.Field("poll", readiness.poll->failing() ? "failing" : "ok");
        if (readiness.poll->last_success) {
            out.Field("pollLastSuccess", fhir::FormatInstant(*readiness.poll->last_success, 0));
        }
    }
    out.EndObject();
    return out.Take();
}

}  // namespace microcare::adapter
