#include "rules/rule_set_loader.hpp"

#include <algorithm>
#include <initializer_list>
#include <unordered_map>

#include "fhir/ids.hpp"
#include "fhir/json.hpp"
#include "fhir/json_path_reader.hpp"

namespace microcare::rules {
namespace {

using fhir::CalendarDuration;
using fhir::IssueList;
using fhir::Node;
using fhir::ResourceType;

constexpr std::size_t kTypeCount = fhir::kResourceTypeCount;

// The status codes FHIR R4 defines for each type, so that a misspelt status in a pack is an
// error rather than a rule that silently never fires.
const std::vector<std::string_view>& KnownStatuses(ResourceType type) {
    static const std::array<std::vector<std::string_view>, kTypeCount> known = {{
        /* Patient */ {},
        /* Encounter */
        {"planned", "arrived", "triaged", "in-progress", "onleave", "finished", "cancelled",
         "entered-in-error", "unknown"},
        /* Condition */ {"active", "recurrence", "relapse", "inactive", "remission", "resolved"},
        /* AllergyIntolerance */ {"active", "inactive", "resolved"},
        /* MedicationRequest */
        {"active", "on-hold", "cancelled", "completed", "entered-in-error", "stopped", "draft",
         "unknown"},
        /* MedicationStatement */
        {"active", "completed", "entered-in-error", "intended", "stopped", "on-hold", "unknown",
         "not-taken"},
        /* MedicationAdministration */
        {"in-progress", "not-done", "on-hold", "completed", "entered-in-error", "stopped",
         "unknown"},
        /* Procedure */
        {"preparation", "in-progress", "not-done", "on-hold", "stopped", "completed",
         "entered-in-error", "unknown"},
        /* Observation */
        {"registered", "preliminary", "final", "amended", "corrected", "cancelled",
         "entered-in-error", "unknown"},
        /* Immunization */ {"completed", "entered-in-error", "not-done"},
    }};
    return known[static_cast<std::size_t>(type)];
}

const std::vector<std::string_view>& KnownVerificationStatuses(ResourceType type) {
    static const std::vector<std::string_view> condition = {
        "unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"};
    static const std::vector<std::string_view> allergy = {"unconfirmed", "confirmed", "refuted",
                                                          "entered-in-error"};
    static const std::vector<std::string_view> none;
    if (type == ResourceType::kCondition) return condition;
    if (type == ResourceType::kAllergyIntolerance) return allergy;
    return none;
}

std::string Quote(std::string_view text) { return "\"" + std::string(text) + "\""; }

std::string Join(const std::vector<std::string_view>& items) {
    std::string out;
    for (std::string_view item : items) {
        if (!out.empty()) out += ", ";
        out += item;
    }
    return out;
}

// Reads one pack, reporting every problem it finds before giving up.
class PackLoader : public fhir::JsonPathReader {
public:
    PackLoader(const PackFileReader& read_file, IssueList& issues)
        : JsonPathReader(issues), read_file_(read_file), issues_(issues) {}

    // The canonical content read so far (see LoadRuleSet).
    const std::string& CanonicalContent() const { return canonical_; }

    std::optional<RuleSet> Load(Node root) {
        if (!root.IsObject()) {
            Error("", "a rule pack is a JSON object");
            return std::nullopt;
        }
        canonical_ = fhir::Serialize(root);
        Keys(root, "",
             {"id", "version", "title", "publisher", "description", "statusDefaults", "caps",
              "valueSets", "microneedling", "contraindications", "aftercare", "source", "date",
              "status", "signOff"});
        set_.id = Id(root, "id", "id");
        set_.version = Id(root, "version", "version");
        set_.title = Text(root, "title", "title", false);
        set_.publisher = Text(root, "publisher", "publisher", false);
        set_.description = Text(root, "description", "description", false);
        ReadValueSets(root["valueSets"]);
        ReadStatusDefaults(root["statusDefaults"]);
        ReadCaps(root["caps"]);
        ReadMicroneedling(root["microneedling"]);
        ReadContraindications(root["contraindications"]);
        ReadAftercare(root["aftercare"]);
        if (issues_.HasErrors()) return std::nullopt;
        Index();
        set_.codes.Build();  // before the pack is shared between threads
        return std::move(set_);
    }

private:
    // ---- primitives ------------------------------------------------------------------------

    std::string Text(Node object, std::string_view key, const std::string& path, bool required) {
        Node node = object[key];
        if (!node.Exists()) {
            if (required) Error(path, "missing");
            return {};
        }
        if (!node.IsString() || (required && node.String().empty())) {
            Error(path, "must be a non-empty string");
            return {};
        }
        return std::string(node.String());
    }

    std::string Id(Node object, std::string_view key, const std::string& path) {
        std::string id = Text(object, key, path, true);
        if (!id.empty() && !fhir::IsFhirId(id)) {
            Error(path, Quote(id) + " is not an id: use 1-64 characters of A-Z a-z 0-9 - .");
            return {};
        }
        return id;
    }

    std::optional<CalendarDuration> Duration(Node object, std::string_view key,
                                             const std::string& path, bool required) {
        Node node = object[key];
        if (!node.Exists()) {
            if (required) Error(path, "missing");
            return std::nullopt;
        }
        auto parsed = node.IsString() ? CalendarDuration::Parse(node.String()) : std::nullopt;
        if (!parsed) {
            Error(path, (node.IsString() ? Quote(node.String()) : std::string(node.TypeName())) +
                            " is not a FHIR duration such as P6M, P4W, P10D or PT48H");
        }
        return parsed;
    }

    std::vector<std::string> Strings(Node node, const std::string& path) {
        std::vector<std::string> result;
        if (!Array(node, path)) return result;
        for (std::size_t i = 0; i < node.Size(); ++i) {
            if (!node[i].IsString() || node[i].String().empty()) {
                Error(At(path, i), "must be a non-empty string");
                continue;
            }
            result.emplace_back(node[i].String());
        }
        return result;
    }

    std::optional<Severity> SeverityAt(Node object, std::string_view key, const std::string& path) {
        std::string text = Text(object, key, path, true);
        if (text == "absolute") return Severity::kAbsolute;
        if (text == "relative") return Severity::kRelative;
        if (text == "info") return Severity::kInfo;
        if (!text.empty())
            Error(path, Quote(text) + " is not a severity: absolute, relative or info");
        return std::nullopt;
    }

    std::optional<ResourceType> TypeAt(Node node, const std::string& path) {
        auto type = node.IsString() ? fhir::ParseResourceType(node.String()) : std::nullopt;
        if (!type) {
            Error(path, (node.IsString() ? Quote(node.String()) : std::string(node.TypeName())) +
                            " is not a resource type MicroCare reads (Condition, "
                            "AllergyIntolerance, MedicationRequest, MedicationStatement, "
                            "MedicationAdministration, Procedure, Observation, Immunization, "
                            "Patient)");
        }
        return type;
    }

    CodingSpec CodingAt(Node node, const std::string& path) {
        CodingSpec coding;
        if (!Object(node, path)) return coding;
        Keys(node, path, {"system", "code", "display"});
        coding.system = Text(node, "system", At(path, "system"), true);
        coding.code = Text(node, "code", At(path, "code"), true);
        coding.display = Text(node, "display", At(path, "display"), false);
        return coding;
    }

    std::optional<std::size_t> ValueSetRef(Node object, std::string_view key,
                                           const std::string& path, bool required) {
        Node node = object[key];
        if (!node.Exists()) {
            if (required) Error(path, "missing");
            return std::nullopt;
        }
        auto it = node.IsString() ? value_set_ids_.find(std::string(node.String()))
                                  : value_set_ids_.end();
        if (it == value_set_ids_.end()) {
            Error(path, (node.IsString() ? Quote(node.String()) : std::string(node.TypeName())) +
                            " is not a value set of this pack (see valueSets)");
            return std::nullopt;
        }
        return it->second;
    }

    // Every status must be known for at least one of `types`.
    void CheckStatuses(const std::vector<std::string>& statuses,
                       const std::array<bool, kTypeCount>& types, const std::string& path,
                       bool verification = false) {
        for (std::size_t i = 0; i < statuses.size(); ++i) {
            bool known = false;
            std::vector<std::string_view> choices;
            for (std::size_t t = 0; t < kTypeCount; ++t) {
                if (!types[t]) continue;
                const auto& list = verification
                                       ? KnownVerificationStatuses(static_cast<ResourceType>(t))
                                       : KnownStatuses(static_cast<ResourceType>(t));
                known = known || std::find(list.begin(), list.end(), statuses[i]) != list.end();
                for (std::string_view code : list) {
                    if (std::find(choices.begin(), choices.end(), code) == choices.end()) {
                        choices.push_back(code);
                    }
                }
            }
            if (!known) {
                Error(At(path, i), Quote(statuses[i]) + " is not a status of these resources (" +
                                       Join(choices) + ")");
            }
        }
    }

    // ---- value sets ------------------------------------------------------------------------

    void ReadValueSets(Node node) {
        const std::string path = "valueSets";
        if (!Object(node, path)) return;
        // Ids first, so that value sets can be named before they are read.
        node.ForEachMember([&](std::string_view name, Node) {
            if (!fhir::IsFhirId(name)) {
                Error(At(path, name), "is not an id: use 1-64 characters of A-Z a-z 0-9 - .");
                return;
            }
            if (set_.value_sets.size() >= kMaxValueSets) {
                Error(At(path, name),
                      "too many value sets (at most " + std::to_string(kMaxValueSets) + ")");
                return;
            }
            value_set_ids_.emplace(std::string(name), set_.value_sets.size());
            set_.value_sets.push_back(ValueSet{std::string(name), {}});
        });
        node.ForEachMember([&](std::string_view name, Node value) {
            auto it = value_set_ids_.find(std::string(name));
            if (it != value_set_ids_.end()) ReadValueSet(it->second, value, At(path, name));
        });
    }

    void ReadValueSet(std::size_t index, Node node, const std::string& path) {
        if (!Object(node, path)) return;
        Keys(node, path,
             {"title", "description", "codes", "prefixes", "ranges", "text", "exclude",
              "excludeText", "file", "source"});
        set_.value_sets[index].title = Text(node, "title", At(path, "title"), false);
        bool any = false;
        if (node["codes"].Exists()) {
            any = true;
            Node codes = node["codes"];
            if (Array(codes, At(path, "codes"))) {
                for (std::size_t i = 0; i < codes.Size(); ++i) {
                    CodingSpec coding = CodingAt(codes[i], At(At(path, "codes"), i));
                    set_.codes.AddCode(index, coding.system, coding.code);
                }
            }
        }
        if (node["prefixes"].Exists()) {
            any = true;
            Node prefixes = node["prefixes"];
            if (Array(prefixes, At(path, "prefixes"))) {
                for (std::size_t i = 0; i < prefixes.Size(); ++i) {
                    std::string at = At(At(path, "prefixes"), i);
                    if (!Object(prefixes[i], at)) continue;
                    Keys(prefixes[i], at, {"system", "prefix", "display"});
                    std::string system = Text(prefixes[i], "system", At(at, "system"), true);
                    std::string prefix = Text(prefixes[i], "prefix", At(at, "prefix"), true);
                    if (!prefix.empty()) set_.codes.AddPrefix(index, system, prefix);
                }
            }
        }
        if (node["ranges"].Exists()) {
            any = true;
            Node ranges = node["ranges"];
            if (Array(ranges, At(path, "ranges"))) {
                for (std::size_t i = 0; i < ranges.Size(); ++i) {
                    std::string at = At(At(path, "ranges"), i);
                    if (!Object(ranges[i], at)) continue;
                    Keys(ranges[i], at, {"system", "from", "to", "display"});
                    std::string system = Text(ranges[i], "system", At(at, "system"), true);
                    std::string from = Text(ranges[i], "from", At(at, "from"), true);
                    std::string to = Text(ranges[i], "to", At(at, "to"), true);
                    if (from.size() != to.size() || from > to) {
                        Error(at, "from and to must have the same length and from <= to");
                        continue;
                    }
                    set_.codes.AddRange(index, system, from, to);
                }
            }
        }
        if (node["text"].Exists()) {
            any = true;
            for (const std::string& pattern : Patterns(node["text"], At(path, "text"))) {
                set_.codes.AddText(index, pattern);
            }
        }
        if (node["excludeText"].Exists()) {
            for (const std::string& pattern :
                 Patterns(node["excludeText"], At(path, "excludeText"))) {
                set_.codes.AddExcludedText(index, pattern);
            }
        }
        if (node["exclude"].Exists()) {
            Node codes = node["exclude"];
            if (Array(codes, At(path, "exclude"))) {
                for (std::size_t i = 0; i < codes.Size(); ++i) {
                    CodingSpec coding = CodingAt(codes[i], At(At(path, "exclude"), i));
                    set_.codes.AddExclusion(index, coding.system, coding.code);
                }
            }
        }
        if (node["file"].Exists()) {
            any = true;
            ReadValueSetFile(index, Text(node, "file", At(path, "file"), true), At(path, "file"));
        }
        if (!any) Error(path, "needs at least one of codes, prefixes, ranges, text or file");
    }

    std::vector<std::string> Patterns(Node node, const std::string& path) {
        std::vector<std::string> patterns = Strings(node, path);
        for (std::size_t i = 0; i < patterns.size(); ++i) {
            std::string_view body = patterns[i];
            if (body.starts_with('*')) body.remove_prefix(1);
            if (body.ends_with('*')) body.remove_suffix(1);
            bool starts_with_word_char =
                !body.empty() && (std::isalnum(static_cast<unsigned char>(body[0])) ||
                                  static_cast<unsigned char>(body[0]) >= 0x80);
            if (body.size() < 2 || body.find('*') != std::string_view::npos ||
                !starts_with_word_char) {
                Error(At(path, i), Quote(patterns[i]) +
                                       " is not a text pattern: at least 2 characters starting "
                                       "with a letter or digit, `*` only at either end");
            }
        }
        return patterns;
    }

    void ReadValueSetFile(std::size_t index, const std::string& file, const std::string& path) {
        if (file.empty()) return;
        if (file.find("..") != std::string::npos || file.starts_with('/')) {
            Error(path, Quote(file) + ": value-set files must lie inside the pack's folder");
            return;
        }
        auto text = read_file_ ? read_file_(file) : std::nullopt;
        if (!text) {
            Error(path, Quote(file) + " cannot be read");
            return;
        }
        IssueList file_issues;
        auto doc = fhir::JsonDocument::Parse(*text, file_issues);
        std::string where = path + "(" + file + ")";
        for (const fhir::Issue& issue : file_issues) Error(where, issue.message);
        if (!doc) return;
        Node root = doc->Root();
        canonical_ += '\n';
        canonical_ += fhir::Serialize(root);
        if (root["resourceType"].String() != "ValueSet") {
            Error(where, "is not a FHIR ValueSet");
            return;
        }
        std::size_t added = 0;
        Node expansion = root["expansion"];
        if (expansion.Exists()) {
            added =
                ReadContains(index, expansion["contains"], where + ": ValueSet.expansion.contains");
        } else {
            Node include = root["compose"]["include"];
            for (std::size_t i = 0; i < include.Size(); ++i) {
                std::string at = where + ": ValueSet.compose.include[" + std::to_string(i) + "]";
                if (include[i]["filter"].Exists() || include[i]["valueSet"].Exists() ||
                    !include[i]["concept"].Exists()) {
                    Error(at,
                          "filters, value-set imports and whole code systems are not "
                          "evaluated: expand the value set with a terminology server");
                    continue;
                }
                std::string_view system = include[i]["system"].String();
                Node concepts = include[i]["concept"];
                for (std::size_t c = 0; c < concepts.Size(); ++c) {
                    std::string_view code = concepts[c]["code"].String();
                    if (system.empty() || code.empty()) {
                        Error(at + ".concept[" + std::to_string(c) + "]",
                              "system and code required");
                        continue;
                    }
                    set_.codes.AddCode(index, system, code);
                    ++added;
                }
            }
        }
        if (added == 0) Error(where, "holds no codes");
    }

    std::size_t ReadContains(std::size_t index, Node contains, const std::string& path) {
        std::size_t added = 0;
        for (std::size_t i = 0; i < contains.Size(); ++i) {
            Node item = contains[i];
            std::string_view system = item["system"].String();
            std::string_view code = item["code"].String();
            bool abstract = item["abstract"].Bool().value_or(false);
            if (!system.empty() && !code.empty() && !abstract) {
                set_.codes.AddCode(index, system, code);
                ++added;
            } else if (!abstract && !item["contains"].Exists()) {
                Error(At(path, i), "system and code required");
            }
            added += ReadContains(index, item["contains"], At(path, i) + ".contains");
        }
        return added;
    }

    // ---- statuses and caps -----------------------------------------------------------------

    void ReadStatusDefaults(Node node) {
        const std::string path = "statusDefaults";
        if (!Object(node, path)) return;
        node.ForEachMember([&](std::string_view name, Node value) {
            std::string at = At(path, name);
            auto type = fhir::ParseResourceType(name);
            if (!type) {
                Error(at, "is not a resource type MicroCare reads");
                return;
            }
            if (!Object(value, at)) return;
            Keys(value, at, {"ongoing", "past"});
            std::array<bool, kTypeCount> types{};
            types[static_cast<std::size_t>(*type)] = true;
            StatusSets& sets = set_.status_defaults[static_cast<std::size_t>(*type)];
            sets.ongoing = Strings(value["ongoing"], At(at, "ongoing"));
            sets.past = Strings(value["past"], At(at, "past"));
            CheckStatuses(sets.ongoing, types, At(at, "ongoing"));
            CheckStatuses(sets.past, types, At(at, "past"));
        });
    }

    void ReadCaps(Node node) {
        const std::string path = "caps";
        if (!node.Exists() || !Array(node, path)) return;
        for (std::size_t i = 0; i < node.Size(); ++i) {
            std::string at = At(path, i);
            if (!Object(node[i], at)) continue;
            Keys(node[i], at,
                 {"resourceType", "status", "clinicalStatus", "verificationStatus", "severity",
                  "note"});
            Cap cap;
            auto type = TypeAt(node[i]["resourceType"], At(at, "resourceType"));
            if (type) cap.resource_type = *type;
            std::array<bool, kTypeCount> types{};
            if (type) types[static_cast<std::size_t>(*type)] = true;
            for (std::string_view key : {"status", "clinicalStatus"}) {
                if (!node[i][key].Exists()) continue;
                auto statuses = Strings(node[i][key], At(at, key));
                CheckStatuses(statuses, types, At(at, key));
                cap.status.insert(cap.status.end(), statuses.begin(), statuses.end());
            }
            if (node[i]["verificationStatus"].Exists()) {
                cap.verification_status =
                    Strings(node[i]["verificationStatus"], At(at, "verificationStatus"));
                CheckStatuses(cap.verification_status, types, At(at, "verificationStatus"), true);
            }
            if (cap.status.empty() && cap.verification_status.empty()) {
                Error(at, "needs status, clinicalStatus or verificationStatus");
            }
            if (auto severity = SeverityAt(node[i], "severity", At(at, "severity"))) {
                cap.severity = *severity;
            }
            cap.note = Text(node[i], "note", At(at, "note"), true);
            set_.caps.push_back(std::move(cap));
        }
    }

    // ---- criteria and rules ----------------------------------------------------------------

    std::optional<std::size_t> ReadCriterion(Node node, const std::string& path,
                                             CriterionRole role) {
        if (!Object(node, path)) return std::nullopt;
        Keys(node, path,
             {"resourceTypes", "valueSet", "ongoing", "past", "lookBack", "onsetWithin", "value",
              "quantity", "unlessLater", "ageUnder", "note"});
        Criterion criterion;
        criterion.path = path;
        Node types = node["resourceTypes"];
        if (Array(types, At(path, "resourceTypes"))) {
            for (std::size_t i = 0; i < types.Size(); ++i) {
                auto type = TypeAt(types[i], At(At(path, "resourceTypes"), i));
                if (type) criterion.types[static_cast<std::size_t>(*type)] = true;
            }
            if (types.Size() == 0) Error(At(path, "resourceTypes"), "must name at least one type");
        }
        const bool patient = criterion.Accepts(ResourceType::kPatient);
        const bool observation = criterion.Accepts(ResourceType::kObservation);
        if (node["ageUnder"].Exists() || patient) {
            criterion.age_under = Duration(node, "ageUnder", At(path, "ageUnder"), true);
            if (std::count(criterion.types.begin(), criterion.types.end(), true) != 1 || !patient) {
                Error(At(path, "resourceTypes"), "an ageUnder criterion reads Patient only");
            }
            if (node["valueSet"].Exists()) Error(At(path, "valueSet"), "not used with ageUnder");
        } else {
            criterion.value_set = ValueSetRef(node, "valueSet", At(path, "valueSet"), true);
        }
        if (node["ongoing"].Exists()) {
            criterion.ongoing = Strings(node["ongoing"], At(path, "ongoing"));
            CheckStatuses(*criterion.ongoing, criterion.types, At(path, "ongoing"));
        }
        if (node["past"].Exists()) {
            criterion.past = Strings(node["past"], At(path, "past"));
            CheckStatuses(*criterion.past, criterion.types, At(path, "past"));
        }
        if (node["lookBack"].IsString() && node["lookBack"].String() == "unlimited") {
            criterion.look_back = Window{{}, true};
        } else if (auto look_back = Duration(node, "lookBack", At(path, "lookBack"), false)) {
            criterion.look_back = Window{*look_back, false};
        }
        if (!patient && !criterion.look_back && !node["lookBack"].Exists()) {
            RequireLookBackIfPast(criterion, path);
        }
        criterion.onset_within = Duration(node, "onsetWithin", At(path, "onsetWithin"), false);
        if (node["value"].Exists()) {
            std::string at = At(path, "value");
            if (Object(node["value"], at)) {
                Keys(node["value"], at, {"valueSet"});
                criterion.value_value_set =
                    ValueSetRef(node["value"], "valueSet", At(at, "valueSet"), true);
            }
            if (!observation) Error(at, "value tests apply to Observations only");
        }
        if (node["quantity"].Exists()) {
            std::string at = At(path, "quantity");
            if (!observation) Error(at, "quantity tests apply to Observations only");
            if (Object(node["quantity"], at)) {
                Keys(node["quantity"], at, {"comparator", "value", "unit"});
                QuantityTest test;
                test.comparator = Text(node["quantity"], "comparator", At(at, "comparator"), true);
                if (test.comparator != ">" && test.comparator != ">=" && test.comparator != "<" &&
                    test.comparator != "<=") {
                    Error(At(at, "comparator"), "must be one of > >= < <=");
                }
                auto value = node["quantity"]["value"].Number();
                if (!value) Error(At(at, "value"), "must be a number");
                test.value = value.value_or(0);
                test.unit = Text(node["quantity"], "unit", At(at, "unit"), false);
                criterion.quantity = std::move(test);
            }
        }
        std::size_t index = set_.criteria.size();
        set_.criteria.push_back(std::move(criterion));
        set_.roles.push_back(role);
        if (node["unlessLater"].Exists()) {
            auto unless = ReadCriterion(node["unlessLater"], At(path, "unlessLater"),
                                        {CriterionRole::Kind::kUnlessLater, role.rule});
            set_.criteria[index].unless_later = unless;
        }
        return index;
    }

    void RequireLookBackIfPast(const Criterion& criterion, const std::string& path) {
        if (criterion.past) {
            if (!criterion.past->empty()) {
                Error(At(path, "lookBack"), "required: the criterion counts past statuses");
            }
            return;
        }
        for (std::size_t t = 0; t < kTypeCount; ++t) {
            if (criterion.types[t] && !set_.status_defaults[t].past.empty()) {
                Error(At(path, "lookBack"),
                      "required: " + std::string(fhir::ToString(static_cast<ResourceType>(t))) +
                          " has past statuses in statusDefaults; give a lookBack, or \"past\": [] "
                          "to count only ongoing ones");
                return;
            }
        }
    }

    void ReadContraindications(Node node) {
        const std::string path = "contraindications";
        if (!Array(node, path)) return;
        std::unordered_map<std::string, std::size_t> ids;
        for (std::size_t i = 0; i < node.Size(); ++i) {
            std::string at = At(path, i);
            if (!Object(node[i], at)) {
                set_.rules.emplace_back();
                continue;
            }
            std::string id = Id(node[i], "id", At(at, "id"));
            if (!id.empty() && !ids.emplace(id, i).second) {
                Error(At(at, "id"), Quote(id) + " is used by contraindications[" +
                                        std::to_string(ids[id]) + "] already");
            }
            set_.rules.emplace_back().id = id;
        }
        for (std::size_t i = 0; i < node.Size(); ++i) {
            if (node[i].IsObject()) ReadRule(node[i], At(path, i), i, ids);
        }
    }

    // A list of other rules' ids (suppressedBy, excludedBy), as indexes; absent is empty.
    std::vector<std::size_t> OtherRules(Node rule, std::string_view key, const std::string& path,
                                        std::size_t index,
                                        const std::unordered_map<std::string, std::size_t>& ids) {
        std::vector<std::size_t> result;
        if (!rule[key].Exists()) return result;
        const std::string at = At(path, key);
        auto names = Strings(rule[key], at);
        for (std::size_t i = 0; i < names.size(); ++i) {
            auto it = ids.find(names[i]);
            if (it == ids.end() || it->second == index) {
                Error(At(at, i), Quote(names[i]) + (it == ids.end() ? " is not a rule of this pack"
                                                                    : " is this rule itself"));
                continue;
            }
            result.push_back(it->second);
        }
        return result;
    }

    void ReadRule(Node node, const std::string& path, std::size_t index,
                  const std::unordered_map<std::string, std::size_t>& ids) {
        Keys(node, path,
             {"id", "title", "severity", "issueCode", "treatmentArea", "evidence", "suppressedBy",
              "excludedBy", "downgrade", "message", "action", "source", "window", "notes"});
        Rule& rule = set_.rules[index];
        rule.title = Text(node, "title", At(path, "title"), true);
        if (auto severity = SeverityAt(node, "severity", At(path, "severity"))) {
            rule.severity = *severity;
        }
        rule.issue_code = Text(node, "issueCode", At(path, "issueCode"), true);
        static const std::vector<std::string_view> kIssueCodes = {"COND", "PREG", "LACT",
                                                                  "ALGY", "AGE",  "DRG"};
        if (!rule.issue_code.empty() && std::find(kIssueCodes.begin(), kIssueCodes.end(),
                                                  rule.issue_code) == kIssueCodes.end()) {
            Error(At(path, "issueCode"),
                  Quote(rule.issue_code) + " is not one of " + Join(kIssueCodes));
        }
        if (node["treatmentArea"].Exists()) {
            if (!node["treatmentArea"].IsBool())
                Error(At(path, "treatmentArea"), "must be true or false");
            rule.treatment_area = node["treatmentArea"].Bool().value_or(false);
        }
        rule.message = Text(node, "message", At(path, "message"), true);
        rule.action = Text(node, "action", At(path, "action"), true);
        rule.source = Text(node, "source", At(path, "source"), true);
        Node evidence = node["evidence"];
        if (Array(evidence, At(path, "evidence"))) {
            if (evidence.Size() == 0)
                Error(At(path, "evidence"), "must hold at least one criterion");
            for (std::size_t i = 0; i < evidence.Size(); ++i) {
                if (auto c = ReadCriterion(evidence[i], At(At(path, "evidence"), i),
                                           {CriterionRole::Kind::kEvidence, index})) {
                    set_.rules[index].evidence.push_back(*c);
                }
            }
        }
        set_.rules[index].suppressed_by = OtherRules(node, "suppressedBy", path, index, ids);
        set_.rules[index].excluded_by = OtherRules(node, "excludedBy", path, index, ids);
        Node downgrade = node["downgrade"];
        if (downgrade.Exists() && !downgrade.IsNull()) {
            std::string at = At(path, "downgrade");
            if (Object(downgrade, at)) {
                Keys(downgrade, at, {"severity", "when", "note"});
                Downgrade d;
                if (auto severity = SeverityAt(downgrade, "severity", At(at, "severity"))) {
                    d.severity = *severity;
                    if (d.severity >= set_.rules[index].severity) {
                        Error(At(at, "severity"), "must be lower than the rule's severity");
                    }
                }
                d.note = Text(downgrade, "note", At(at, "note"), true);
                Node when = downgrade["when"];
                if (Array(when, At(at, "when"))) {
                    for (std::size_t i = 0; i < when.Size(); ++i) {
                        if (auto c = ReadCriterion(when[i], At(At(at, "when"), i),
                                                   {CriterionRole::Kind::kDowngrade, index})) {
                            d.when.push_back(*c);
                        }
                    }
                }
                set_.rules[index].downgrade = std::move(d);
            }
        }
    }

    // ---- microneedling and aftercare -------------------------------------------------------

    void ReadMicroneedling(Node node) {
        const std::string path = "microneedling";
        if (!Object(node, path)) return;
        Keys(node, path, {"valueSet", "requireText", "encounterStatus", "procedureStatus"});
        Microneedling& m = set_.microneedling;
        m.value_set = ValueSetRef(node, "valueSet", At(path, "valueSet"), true).value_or(0);
        if (node["requireText"].Exists() && Array(node["requireText"], At(path, "requireText"))) {
            for (std::size_t i = 0; i < node["requireText"].Size(); ++i) {
                m.require_text.push_back(
                    CodingAt(node["requireText"][i], At(At(path, "requireText"), i)));
            }
        }
        std::array<bool, kTypeCount> encounter{};
        encounter[static_cast<std::size_t>(ResourceType::kEncounter)] = true;
        std::array<bool, kTypeCount> procedure{};
        procedure[static_cast<std::size_t>(ResourceType::kProcedure)] = true;
        m.encounter_status = Strings(node["encounterStatus"], At(path, "encounterStatus"));
        CheckStatuses(m.encounter_status, encounter, At(path, "encounterStatus"));
        m.procedure_status = Strings(node["procedureStatus"], At(path, "procedureStatus"));
        CheckStatuses(m.procedure_status, procedure, At(path, "procedureStatus"));
    }

    // earliest <= latest, checked on a fixed date.
    void CheckOrder(const CalendarDuration& earliest, const CalendarDuration& latest,
                    const std::string& path) {
        fhir::Instant base{};
        if (fhir::AddCalendar(base, earliest, 1, 0) > fhir::AddCalendar(base, latest, 1, 0)) {
            Error(path, "earliest must not come after latest");
        }
    }

    void ReadAftercare(Node node) {
        const std::string path = "aftercare";
        if (!Object(node, path)) return;
        Keys(node, path, {"check", "series", "maintenance", "education", "instructions"});
        Aftercare& a = set_.aftercare;

        std::string at = At(path, "check");
        if (Object(node["check"], at)) {
            Node check = node["check"];
            Keys(check, at, {"code", "due", "earliest", "latest", "description"});
            a.check_code = CodingAt(check["code"], At(at, "code"));
            a.check_due = Duration(check, "due", At(at, "due"), true).value_or(CalendarDuration{});
            a.check_earliest =
                Duration(check, "earliest", At(at, "earliest"), true).value_or(CalendarDuration{});
            a.check_latest =
                Duration(check, "latest", At(at, "latest"), true).value_or(CalendarDuration{});
            a.check_description = Text(check, "description", At(at, "description"), true);
            CheckOrder(a.check_earliest, a.check_due, at);
            CheckOrder(a.check_due, a.check_latest, at);
        }

        at = At(path, "series");
        if (Object(node["series"], at)) {
            Node series = node["series"];
            Keys(series, at,
                 {"countWithin", "length", "earliest", "latest", "code", "description",
                  "indications"});
            a.count_within = Duration(series, "countWithin", At(at, "countWithin"), true)
                                 .value_or(CalendarDuration{});
            a.series_length = SeriesLength(series, At(at, "length"));
            a.series_earliest =
                Duration(series, "earliest", At(at, "earliest"), true).value_or(CalendarDuration{});
            a.series_latest =
                Duration(series, "latest", At(at, "latest"), true).value_or(CalendarDuration{});
            CheckOrder(a.series_earliest, a.series_latest, at);
            a.series_code = CodingAt(series["code"], At(at, "code"));
            a.series_description = Text(series, "description", At(at, "description"), false);
            if (series["indications"].Exists() &&
                Array(series["indications"], At(at, "indications"))) {
                Node list = series["indications"];
                for (std::size_t i = 0; i < list.Size(); ++i) {
                    std::string item_path = At(At(at, "indications"), i);
                    if (!Object(list[i], item_path)) continue;
                    Keys(list[i], item_path,
                         {"id", "valueSet", "length", "earliest", "latest", "source"});
                    SeriesIndication indication;
                    indication.id = Id(list[i], "id", At(item_path, "id"));
                    indication.value_set =
                        ValueSetRef(list[i], "valueSet", At(item_path, "valueSet"), true)
                            .value_or(0);
                    indication.length = SeriesLength(list[i], At(item_path, "length"));
                    indication.earliest =
                        Duration(list[i], "earliest", At(item_path, "earliest"), true)
                            .value_or(CalendarDuration{});
                    indication.latest = Duration(list[i], "latest", At(item_path, "latest"), true)
                                            .value_or(CalendarDuration{});
                    CheckOrder(indication.earliest, indication.latest, item_path);
                    a.indications.push_back(std::move(indication));
                }
            }
        }

        at = At(path, "maintenance");
        if (Object(node["maintenance"], at)) {
            Node maintenance = node["maintenance"];
            Keys(maintenance, at, {"code", "earliest", "latest", "description"});
            a.maintenance_code = CodingAt(maintenance["code"], At(at, "code"));
            a.maintenance_earliest = Duration(maintenance, "earliest", At(at, "earliest"), true)
                                         .value_or(CalendarDuration{});
            a.maintenance_latest = Duration(maintenance, "latest", At(at, "latest"), true)
                                       .value_or(CalendarDuration{});
            a.maintenance_description =
                Text(maintenance, "description", At(at, "description"), false);
            CheckOrder(a.maintenance_earliest, a.maintenance_latest, at);
        }

        at = At(path, "education");
        if (Object(node["education"], at)) {
            Keys(node["education"], at, {"code"});
            a.education_code = CodingAt(node["education"]["code"], At(at, "code"));
        }

        at = At(path, "instructions");
        if (Array(node["instructions"], at)) {
            Node list = node["instructions"];
            std::unordered_map<std::string, std::size_t> ids;
            for (std::size_t i = 0; i < list.Size(); ++i) {
                std::string item_path = At(at, i);
                if (!Object(list[i], item_path)) continue;
                Keys(list[i], item_path, {"id", "from", "until", "text", "source"});
                Instruction instruction;
                instruction.id = Id(list[i], "id", At(item_path, "id"));
                if (!instruction.id.empty() && !ids.emplace(instruction.id, i).second) {
                    Error(At(item_path, "id"), Quote(instruction.id) + " is used twice");
                }
                instruction.from = Duration(list[i], "from", At(item_path, "from"), true)
                                       .value_or(CalendarDuration{});
                instruction.until = Duration(list[i], "until", At(item_path, "until"), true)
                                        .value_or(CalendarDuration{});
                CheckOrder(instruction.from, instruction.until, item_path);
                instruction.text = Text(list[i], "text", At(item_path, "text"), true);
                a.instructions.push_back(std::move(instruction));
            }
        }
    }

    int SeriesLength(Node object, const std::string& path) {
        if (!object["length"].Exists()) {
            Error(path, "missing");
            return 3;
        }
        auto value = WholeNumber(object["length"], path, 1, 12, "of sessions");
        return value ? static_cast<int>(*value) : 3;
    }

    // ---- index -----------------------------------------------------------------------------

    void Index() {
        set_.criteria_by_value_set.assign(set_.value_sets.size(), {});
        for (std::size_t i = 0; i < set_.criteria.size(); ++i) {
            if (set_.criteria[i].value_set) {
                set_.criteria_by_value_set[*set_.criteria[i].value_set].push_back(i);
            } else {
                set_.criteria_without_value_set.push_back(i);
            }
        }
    }

    const PackFileReader& read_file_;
    IssueList& issues_;
    RuleSet set_;
    std::unordered_map<std::string, std::size_t> value_set_ids_;
    std::string canonical_;
};

}  // namespace

std::optional<RuleSet> LoadRuleSet(std::string_view json_text, const PackFileReader& read_file,
                                   IssueList& issues, const ContentDigest& digest) {
    IssueList parse_issues;
    auto doc = fhir::JsonDocument::Parse(std::string(json_text), parse_issues);
    for (const fhir::Issue& issue : parse_issues)
        issues.Error("invalid", issue.path, issue.message);
    if (!doc) return std::nullopt;
    PackLoader loader(read_file, issues);
    auto set = loader.Load(doc->Root());
    if (set && digest) set->sha256 = digest(loader.CanonicalContent());
    return set;
}

}  // namespace microcare::rules
