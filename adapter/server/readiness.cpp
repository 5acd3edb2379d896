#include "adapter/server/readiness.hpp"

#include "fhir/json.hpp"

namespace microcare::adapter {

std::string ReadinessJson(bool ready, const rules::PackIdentity& pack) {
    fhir::JsonWriter out;
    out.StartObject();
    out.Field("status", ready ? "ready" : "not ready");
    out.Key("rulePack");
    out.StartObject();
    out.Field("id", pack.id);
    out.Field("version", pack.version);
    out.Field("sha256", pack.sha256);
    out.EndObject();
    out.EndObject();
    return out.Take();
}

}  // namespace microcare::adapter
