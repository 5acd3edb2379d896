#include "fhir/audit_event.hpp"

#include "fhir/bundle.hpp"
#include "fhir/ids.hpp"

namespace microcare::fhir {
namespace {

constexpr std::string_view kDicom = "http://dicom.nema.org/resources/ontology/DCM";

void Coding(JsonWriter& out, std::string_view system, std::string_view code,
            std::string_view display) {
    out.StartObject();
    out.Field("system", system);
    out.Field("code", code);
    out.Field("display", display);
    out.EndObject();
}

void Concept(JsonWriter& out, std::string_view key, std::string_view system, std::string_view code,
             std::string_view display) {
    out.Key(key);
    out.StartObject();
    out.Key("coding");
    out.StartArray();
    Coding(out, system, code, display);
    out.EndArray();
    out.EndObject();
}

void Display(JsonWriter& out, std::string_view key, std::string_view display) {
    out.Key(key);
    out.StartObject();
    out.Field("display", display);
    out.EndObject();
}

// An agent: its DICOM role, who it is, whether it asked, and its network address if known.
void Agent(JsonWriter& out, std::string_view role, std::string_view role_display,
           std::string_view who, bool requestor, std::string_view address) {
    out.StartObject();
    Concept(out, "type", kDicom, role, role_display);
    Display(out, "who", who);
    out.Key("requestor");
    out.Bool(requestor);
    if (!address.empty()) {
        out.Key("network");
        out.StartObject();
        out.Field("address", address);
        out.Field("type", "5");  // a URI
        out.EndObject();
    }
    out.EndObject();
}

// An entity: the written resource (a system object, a domain resource) or the patient.
void Entity(JsonWriter& out, std::string_view reference, bool patient,
            const AuditEventValue& value) {
    out.StartObject();
    out.Key("what");
    out.StartObject();
    out.Field("reference", reference);
    out.EndObject();
    if (!patient && !value.key.empty()) out.Field("name", value.key);
    out.Key("type");
    Coding(out, "http://terminology.hl7.org/CodeSystem/audit-entity-type", patient ? "1" : "2",
           patient ? "Person" : "System Object");
    out.Key("role");
    Coding(out, "http://terminology.hl7.org/CodeSystem/object-role", patient ? "1" : "4",
           patient ? "Patient" : "Domain Resource");
    if (!patient) {
        out.Key("detail");
        out.StartArray();
        for (const auto& [type, text] :
             {std::pair<std::string_view, std::string_view>{"microcare-rule-pack", value.pack},
              {"microcare-job", value.job}}) {
            if (text.empty()) continue;
            out.StartObject();
            out.Field("type", type);
            out.Field("valueString", text);
            out.EndObject();
        }
        out.EndArray();
    }
    out.EndObject();
}

}  // namespace

void WriteAuditEvent(JsonWriter& out, const AuditEventValue& value) {
    out.StartObject();
    out.Field("resourceType", "AuditEvent");
    out.Key("type");
    Coding(out, "http://terminology.hl7.org/CodeSystem/audit-event-type", "rest",
           "Restful Operation");
    out.Key("subtype");
    out.StartArray();
    Coding(out, "http://hl7.org/fhir/restful-interaction", value.update ? "update" : "create",
           value.update ? "update" : "create");
    out.EndArray();
    out.Field("action", value.update ? "U" : "C");
    out.Field("recorded", FormatInstant(value.recorded, 0));
    out.Field("outcome", "0");
    out.Key("agent");
    out.StartArray();
    // BALP: the client that asked for the write, and the server that made it.
    Agent(out, "110153", "Source Role ID", value.software, true, {});
    Agent(out, "110152", "Destination Role ID", value.ehr, false, value.ehr);
    out.EndArray();
    out.Key("source");
    out.StartObject();
    Display(out, "observer", value.software);
    out.Key("type");
    out.StartArray();
    Coding(out, "http://terminology.hl7.org/CodeSystem/security-source-type", "4",
           "Application Server");
    out.EndArray();
    out.EndObject();
    out.Key("entity");
    out.StartArray();
    Entity(out, value.what, false, value);
    if (!value.patient.empty()) Entity(out, value.patient, true, value);
    out.EndArray();
    out.EndObject();
}

std::optional<std::vector<WrittenVersion>> WrittenVersions(
    Node transaction_response, const std::vector<TransactionValue::EntryWrite>& requested,
    IssueList& issues) {
    const Node entries = transaction_response["entry"];
    if (transaction_response["resourceType"].String() != "Bundle" ||
        transaction_response["type"].String() != "transaction-response" ||
        entries.Size() != requested.size()) {
        issues.Error("invalid", "Bundle",
                     "not a transaction-response with one entry per write (" +
                         std::to_string(requested.size()) + ")");
        return std::nullopt;
    }
    std::vector<WrittenVersion> written;
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        const Node response = entries[i]["response"];
        const std::string_view location = response["location"].String();
        const std::string path = "Bundle.entry[" + std::to_string(i) + "].response.location";
        // Type/id/_history/vid (absolute or relative), or Type/id with the version in the etag
        // or, where the server sends neither (Medplum), in the resource the entry returns.
        std::string_view version;
        if (const auto at = location.find("/_history/"); at != std::string_view::npos) {
            version = location.substr(at + std::string_view("/_history/").size());
        } else if (const std::string_view etag = response["etag"].String(); !etag.empty()) {
            version = etag;
            if (version.starts_with("W/")) version.remove_prefix(2);
            if (version.size() > 2 && version.front() == '"' && version.back() == '"') {
                version = version.substr(1, version.size() - 2);
            }
        } else {
            version = entries[i]["resource"]["meta"]["versionId"].String();
        }
        const std::string type_id = TypeIdOf(location);
        const std::string what = type_id.empty() || !IsFhirId(version)
                                     ? ""
                                     : type_id + "/_history/" + std::string(version);
        if (what.empty()) {
            issues.Error("invalid", path, "does not name the version written");
            return std::nullopt;
        }
        written.push_back(WrittenVersion{what, requested[i].patient, requested[i].update});
    }
    return written;
}

std::string AuditEventKey(std::string_view what) {
    return "microcare:" + std::string(what) + ":" + DeterministicUuid(what);
}

void WriteAuditEventBatch(JsonWriter& out, const AuditEventValue& common,
                          const std::vector<WrittenVersion>& written,
                          std::string_view bundle_type) {
    out.StartObject();
    out.Field("resourceType", "Bundle");
    out.Field("type", bundle_type);
    out.Key("entry");
    out.StartArray();
    for (const WrittenVersion& version : written) {
        AuditEventValue event = common;
        event.what = version.what;
        event.patient = version.patient;
        event.update = version.update;
        event.key = AuditEventKey(version.what);
        out.StartObject();
        out.Key("resource");
        WriteAuditEvent(out, event);
        out.Key("request");
        out.StartObject();
        out.Field("method", "POST");
        out.Field("url", "AuditEvent");
        out.Field("ifNoneExist", "entity-name:exact=" + event.key);
        out.EndObject();
        out.EndObject();
    }
    out.EndArray();
    out.EndObject();
}

}  // namespace microcare::fhir
