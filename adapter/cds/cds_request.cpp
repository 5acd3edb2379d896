#include "adapter/cds/cds_request.hpp"

#include <algorithm>

#include "adapter/client/outbound_url.hpp"

namespace microcare::adapter {
namespace {

std::string RequiredString(fhir::Node object, std::string_view key, const std::string& path,
                           fhir::IssueList& issues) {
    fhir::Node node = object[key];
    if (!node.IsString() || node.String().empty()) {
        issues.Error(node.Exists() ? "value" : "required", path,
                     node.Exists() ? "must be a non-empty string" : "missing");
        return {};
    }
    return std::string(node.String());
}

bool WillNotHappen(fhir::Node resource) {
    static constexpr std::string_view kEnded[] = {"cancelled", "noshow",  "entered-in-error",
                                                  "fulfilled", "revoked", "completed"};
    const std::string_view status = resource["status"].String();
    return std::find(std::begin(kEnded), std::end(kEnded), status) != std::end(kEnded);
}

// The patient a proposed resource names (Appointment.participant.actor, ServiceRequest.subject),
// as `Patient/id` (absolute references reduced); empty when it names none.
std::string PatientOf(fhir::Node resource) {
    auto reduce = [](std::string_view reference) -> std::string {
        const auto at = reference.rfind("Patient/");
        return at == std::string_view::npos ? std::string() : std::string(reference.substr(at));
    };
    if (resource["resourceType"].String() == "ServiceRequest") {
        return reduce(resource["subject"]["reference"].String());
    }
    fhir::Node participants = resource["participant"];
    for (std::size_t i = 0; i < participants.Size(); ++i) {
        std::string patient = reduce(participants[i]["actor"]["reference"].String());
        if (!patient.empty()) return patient;
    }
    return {};
}

// The resources of `type` in context (appointments, draftOrders): a Bundle as CDS Hooks 2.0
// says, or a plain array of resources as the hook pages' own examples send.
void TakeEntries(fhir::Node list, std::string_view type, const std::string& path,
                 std::vector<fhir::Node>& out, fhir::IssueList& issues) {
    const bool bundle = list.IsObject() && list["resourceType"].String() == "Bundle";
    if (!bundle && !list.IsArray()) {
        issues.Error(list.Exists() ? "structure" : "required", path,
                     list.Exists() ? "must be a FHIR Bundle" : "missing");
        return;
    }
    fhir::Node entries = bundle ? list["entry"] : list;
    for (std::size_t i = 0; i < entries.Size(); ++i) {
        const std::string at = path + (bundle ? ".entry[" + std::to_string(i) + "].resource"
                                              : "[" + std::to_string(i) + "]");
        fhir::Node resource = bundle ? entries[i]["resource"] : entries[i];
        if (!resource.IsObject()) {
            issues.Error("structure", at, "must be a resource");
            continue;
        }
        // Draft orders of other kinds (medications, labs) are not MicroCare's business, nor a
        // booking or order that will not take place.
        if (resource["resourceType"].String() != type || WillNotHappen(resource)) continue;
        if (!IsFhirId(resource["id"].String())) {
            issues.Error("required", at + ".id",
                         "a proposed resource needs an id, for the cards to name it");
            continue;
        }
        out.push_back(resource);
    }
}

// A proposed treatment for another patient than the hook's would be assessed on a record that
// is not its own: refused rather than answered with a misleading "nothing found".
void CheckPatients(const std::vector<fhir::Node>& proposed, const std::string& patient_id,
                   const std::string& path, fhir::IssueList& issues) {
    for (fhir::Node resource : proposed) {
        const std::string named = PatientOf(resource);
        if (!named.empty() && named != "Patient/" + patient_id) {
            issues.Error("value", path + "(" + std::string(resource["id"].String()) + ")",
                         "names another patient than context.patientId");
        }
    }
}

bool Selected(fhir::Node selections, fhir::Node resource) {
    const std::string reference =
        std::string(resource["resourceType"].String()) + "/" + std::string(resource["id"].String());
    for (std::size_t i = 0; i < selections.Size(); ++i) {
        if (selections[i].String() == reference) return true;
    }
    return false;
}

}  // namespace

std::optional<HookRequest> ParseHookRequest(fhir::Node body, const CdsServiceSpec& service,
                                            fhir::IssueList& issues) {
    if (!body.IsObject()) {
        issues.Error("structure", "", "the request must be a JSON object");
        return std::nullopt;
    }
    HookRequest out;
    const std::string hook = RequiredString(body, "hook", "hook", issues);
    if (!hook.empty() && hook != service.hook_name) {
        issues.Error("value", "hook",
                     "this service answers \"" + std::string(service.hook_name) + "\"");
    }
    out.hook_instance = RequiredString(body, "hookInstance", "hookInstance", issues);
    if (fhir::Node server = body["fhirServer"]; server.Exists()) {
        auto normal = NormalHttpUrl(server.String());
        if (!server.IsString() || !normal) {
            issues.Error("value", "fhirServer", "must be an absolute http(s) URL");
        } else {
            out.fhir_server = *normal;
            while (out.fhir_server.ends_with('/')) out.fhir_server.pop_back();
        }
    }
    if (fhir::Node auth = body["fhirAuthorization"]; auth.Exists() && !auth.IsNull()) {
        out.access_token =
            RequiredString(auth, "access_token", "fhirAuthorization.access_token", issues);
        if (auth["token_type"].Exists() && auth["token_type"].String() != "Bearer") {
            issues.Error("value", "fhirAuthorization.token_type", "must be Bearer");
        }
    }
    fhir::Node context = body["context"];
    if (!context.IsObject()) {
        issues.Error("required", "context", "missing or not an object");
        return std::nullopt;
    }
    out.patient_id = RequiredString(context, "patientId", "context.patientId", issues);
    if (!out.patient_id.empty() && !IsFhirId(out.patient_id)) {
        issues.Error("value", "context.patientId", "is not a FHIR id");
    }
    if (fhir::Node encounter = context["encounterId"]; encounter.Exists()) {
        out.encounter_id = std::string(encounter.String());
        if (!IsFhirId(out.encounter_id)) {
            issues.Error("value", "context.encounterId", "is not a FHIR id");
        }
    }
    fhir::Node prefetch = body["prefetch"];
    if (prefetch.Exists() && !prefetch.IsNull()) {
        if (!prefetch.IsObject()) {
            issues.Error("structure", "prefetch", "must be an object");
        } else {
            out.prefetch = prefetch;
        }
    }
    switch (service.hook) {
        case CdsHook::kAppointmentBook:
            TakeEntries(context["appointments"], "Appointment", "context.appointments",
                        out.proposed, issues);
            break;
        case CdsHook::kOrderSelect:
        case CdsHook::kOrderSign: {
            std::vector<fhir::Node> drafts;
            TakeEntries(context["draftOrders"], "ServiceRequest", "context.draftOrders", drafts,
                        issues);
            fhir::Node selections = context["selections"];
            for (fhir::Node draft : drafts) {
                // order-select: only what was just selected; the rest was answered before.
                if (service.hook == CdsHook::kOrderSign || !selections.IsArray() ||
                    Selected(selections, draft)) {
                    out.proposed.push_back(draft);
                }
            }
            break;
        }
        case CdsHook::kEncounterStart:
            break;  // the encounter is read with the record
    }
    CheckPatients(
        out.proposed, out.patient_id,
        service.hook == CdsHook::kAppointmentBook ? "context.appointments" : "context.draftOrders",
        issues);
    if (service.hook == CdsHook::kEncounterStart && out.encounter_id.empty()) {
        issues.Error("required", "context.encounterId", "missing");
    }
    if (issues.HasErrors()) return std::nullopt;
    return out;
}

}  // namespace microcare::adapter
