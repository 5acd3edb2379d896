#include "adapter/audit_commands.hpp"

#include <filesystem>
#include <optional>
#include <ostream>

#include "adapter/audit/audit_file_set.hpp"
#include "adapter/audit/audit_query.hpp"
#include "adapter/audit/audit_verify.hpp"
#include "adapter/configured_trail.hpp"
#include "adapter/file_io.hpp"
#include "adapter/issue_report.hpp"
#include "adapter/service_config.hpp"
#include "adapter/time_bound.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

// The trail, its keys and its checkpoint, from the configuration or the arguments; nullopt
// after saying why on `err`.

std::optional<AuditQuery> ParseQuery(const AuditArgs& args, std::ostream& err) {
    AuditQuery query;
    query.patient = args.patient;
    query.encounter = args.encounter;
    query.rule = args.rule;
    query.after_seq = args.after;
    bool bad = false;
    query.since = ParseTimeBound(args.since, "--since", false, err, bad);
    query.until = ParseTimeBound(args.until, "--until", true, err, bad);
    if (bad) return std::nullopt;
    return query;
}

std::string Shown(const TrailToVerify& trail) {
    return trail.shown_as.empty() ? trail.path : trail.shown_as;
}

std::string Where(const TrailToVerify& trail, const AuditFinding& finding) {
    if (finding.file.empty()) return Shown(trail);
    const auto dir = std::filesystem::path(trail.path).parent_path();
    std::string where = trail.shown_as.empty() ? (dir / finding.file).string()
                                               : trail.shown_as + ", " + finding.file;
    if (finding.line > 0) where += ":" + std::to_string(finding.line);
    return where;
}

// What the table shows of a value: control characters (a terminal's escape sequences among
// them) as spaces, so that a hostile value cannot rewrite the auditor's screen.
std::string Printable(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    }
    return out;
}

void WriteFindings(fhir::JsonWriter& w, std::string_view key,
                   const std::vector<AuditFinding>& findings) {
    w.Key(key);
    w.StartArray();
    for (const AuditFinding& f : findings) {
        w.StartObject();
        w.Field("kind", ToString(f.kind));
        if (!f.file.empty()) w.Field("file", f.file);
        if (f.line > 0) {
            w.Key("line");
            w.Int(static_cast<long long>(f.line));
        }
        w.Field("message", f.message);
        w.EndObject();
    }
    w.EndArray();
}

void WriteReportJson(const TrailToVerify& trail, const AuditReport& report, std::ostream& out) {
    fhir::JsonWriter w(true);
    w.StartObject();
    w.Field("trail", Shown(trail));
    w.Key("intact");
    w.Bool(report.intact());
    w.Key("records");
    w.Int(static_cast<long long>(report.records));
    w.Key("lastSeq");
    w.Int(static_cast<long long>(report.head_seq));
    w.Field("lastHash", report.head_hash);
    w.Key("files");
    w.StartArray();
    for (const AuditFileSummary& f : report.files) {
        w.StartObject();
        w.Field("name", f.name);
        w.Key("records");
        w.Int(static_cast<long long>(f.records));
        w.Key("firstSeq");
        w.Int(static_cast<long long>(f.first_seq));
        w.Key("lastSeq");
        w.Int(static_cast<long long>(f.last_seq));
        w.Field("key", f.key_id);
        w.EndObject();
    }
    w.EndArray();
    if (report.checkpoint) {
        w.Key("checkpoint");
        w.StartObject();
        w.Key("records");
        w.Int(static_cast<long long>(report.checkpoint->records));
        w.Field("time", report.checkpoint->time);
        w.Field("key", report.checkpoint->key_id);
        w.EndObject();
    }
    WriteFindings(w, "problems", report.problems);
    WriteFindings(w, "notes", report.notes);
    w.EndObject();
    out << w.View() << "\n";
}

void WriteReportText(const TrailToVerify& trail, const AuditReport& report, std::ostream& out,
                     std::ostream& err) {
    WriteAuditProblems(trail, report, err);
    for (const AuditFinding& f : report.notes) {
        out << Where(trail, f) << ": note: " << f.message << "\n";
    }
    std::string keys;
    for (const AuditFileSummary& f : report.files) {
        if (f.key_id.empty() || keys.find(f.key_id) != std::string::npos) continue;
        keys += (keys.empty() ? "" : ", ") + f.key_id;
    }
    out << Shown(trail) << ": " << report.records << " records in " << report.files.size()
        << (report.files.size() == 1 ? " file" : " files");
    if (report.records > 0) out << ", the last is record " << report.head_seq;
    out << "; sealed with key " << (keys.empty() ? "-" : keys);
    if (report.checkpoint) {
        out << "; checkpoint of " << report.checkpoint->time << " at record "
            << report.checkpoint->records;
    } else if (trail.checkpoint_path.empty()) {
        out << "; no checkpoint checked (--config, or --checkpoint FILE)";
    }
    out << "\n";
    if (report.intact()) {
        out << Shown(trail) << ": chain intact\n";
    } else {
        err << Shown(trail) << ": NOT INTACT: " << report.problems.size()
            << (report.problems.size() == 1 ? " problem" : " problems") << "\n";
    }
}

}  // namespace

void WriteAuditProblems(const TrailToVerify& trail, const AuditReport& report, std::ostream& err) {
    for (const AuditFinding& f : report.problems) {
        err << Where(trail, f) << ": " << ToString(f.kind) << ": " << f.message << "\n";
    }
}

std::optional<TrailToVerify> ResolveTrail(const AuditArgs& args, std::ostream& err) {
    TrailToVerify trail;
    if (!args.config_path.empty() && !args.file.empty()) {
        err << "name the trail once: --config FILE or the trail's FILE, not both\n";
        return std::nullopt;
    }
    if (!args.config_path.empty()) {
        fhir::IssueList issues;
        auto config = LoadServiceConfig(args.config_path, issues);
        if (!config) {
            ReportIssues(err, args.config_path, issues);
            ReportRefused(err, args.config_path, issues);
            return std::nullopt;
        }
        auto configured = ConfiguredTrail(config->audit);
        if (!configured) {
            err << args.config_path << ": error: audit.keyFile: the key cannot be used\n";
            return std::nullopt;
        }
        trail = std::move(*configured);
        if (!config->audit.database.empty()) {
            std::string problem;
            auto copied = CopyTrailFromDatabase(config->audit.database, std::move(trail), problem);
            if (!copied) {
                err << args.config_path << ": store.url: " << problem << " ("
                    << copied.error().message() << ")\n";
                return std::nullopt;
            }
            trail = std::move(*copied);
        }
    } else if (!args.file.empty()) {
        trail.path = args.file;
        trail.checkpoint_path = args.checkpoint_path;
        std::error_code ec;
        if (trail.checkpoint_path.empty() && std::filesystem::exists(args.file + ".checkpoint", ec))
            trail.checkpoint_path = args.file + ".checkpoint";
    } else {
        err << "name the trail: --config FILE (the service configuration) or the trail's FILE\n";
        return std::nullopt;
    }
    for (const std::string& key_file : args.key_files) {
        std::string why;
        auto text = ReadFile(key_file, &why, 64 * 1024);
        if (!text) {
            err << "--key-file " << key_file << ": cannot read it: " << why << "\n";
            return std::nullopt;
        }
        while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
        auto key = ChainKey::Hmac(*text);
        if (!key) {
            err << "--key-file " << key_file << ": " << ChainKey::KeyProblem(*text) << "\n";
            return std::nullopt;
        }
        trail.keys.push_back(*key);
    }
    return trail;
}

int RunAuditVerify(const AuditArgs& args, std::ostream& out, std::ostream& err) {
    auto trail = ResolveTrail(args, err);
    if (!trail) return 2;
    if (!args.format.empty() && args.format != "text" && args.format != "json") {
        err << "--format: \"" << args.format << "\" is not text or json\n";
        return 2;
    }
    const AuditReport report = VerifyTrail(*trail);
    if (args.format == "json") {
        WriteReportJson(*trail, report, out);
    } else {
        WriteReportText(*trail, report, out, err);
    }
    return report.intact() ? 0 : 2;
}

int RunAuditShow(const AuditArgs& args, std::ostream& out, std::ostream& err) {
    auto trail = ResolveTrail(args, err);
    if (!trail) return 2;
    auto query = ParseQuery(args, err);
    if (!query) return 2;
    if (!args.format.empty() && args.format != "table" && args.format != "json") {
        err << "--format: \"" << args.format << "\" is not table or json\n";
        return 2;
    }
    auto records = QueryTrail(trail->path, *query, [&](const std::string& where) {
        err << where << ": not an audit record (skipped; `microcare audit verify` says more)\n";
    });
    if (args.format == "json") {
        fhir::JsonWriter w(true);
        w.StartArray();
        for (const AuditRecordAt& at : records) {
            w.StartObject();
            w.Key("seq");
            w.Int(static_cast<long long>(at.record.seq));
            w.Field("ts", at.record.ts);
            w.Field("event", at.record.event);
            w.Key("fields");
            w.StartObject();
            for (const auto& [name, value] : at.record.fields) w.Field(name, value);
            w.EndObject();
            w.Field("at", at.file + ":" + std::to_string(at.line_number));
            w.EndObject();
        }
        w.EndArray();
        out << w.View() << "\n";
    } else {
        out << "seq\ttime\tevent\tencounter\tpatient\tdetails\n";
        for (const AuditRecordAt& at : records) {
            std::string details;
            for (const auto& [name, value] : at.record.fields) {
                if (name == "encounter" || name == "patient") continue;
                details += (details.empty() ? "" : " ") + name + "=" + value;
            }
            const std::string_view encounter = at.record.Get("encounter");
            const std::string_view patient = at.record.Get("patient");
            out << at.record.seq << "\t" << Printable(at.record.ts) << "\t"
                << Printable(at.record.event) << "\t"
                << (encounter.empty() ? "-" : Printable(encounter)) << "\t"
                << (patient.empty() ? "-" : Printable(patient)) << "\t" << Printable(details)
                << "\n";
        }
    }
    if (records.empty()) err << Shown(*trail) << ": no record answers the question\n";
    return 0;
}

int RunAuditExport(const AuditArgs& args, std::ostream& out, std::ostream& err) {
    auto trail = ResolveTrail(args, err);
    if (!trail) return 2;
    auto query = ParseQuery(args, err);
    if (!query) return 2;
    auto records = QueryTrail(trail->path, *query, {});
    // As sealed: a SIEM can check the chain again on its side.
    for (const AuditRecordAt& at : records) out << at.line << "\n";
    const AuditReport report = VerifyTrail(*trail);
    if (!report.intact()) {
        for (const AuditFinding& f : report.problems) {
            err << Where(*trail, f) << ": " << ToString(f.kind) << ": " << f.message << "\n";
        }
        err << Shown(*trail) << ": NOT INTACT: the records above were exported as they are\n";
        return 2;
    }
    return 0;
}

}  // namespace microcare::adapter
