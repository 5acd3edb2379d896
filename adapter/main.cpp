// The one place that wires MicroCare's command line to its modules.
#include <CLI/CLI.hpp>
#include <exception>
#include <iostream>

#include "adapter/admin_commands.hpp"
#include "adapter/audit_commands.hpp"
#include "adapter/backup_command.hpp"
#include "adapter/evaluate_command.hpp"
#include "adapter/jobs_commands.hpp"
#include "adapter/replay_command.hpp"
#include "adapter/restore_command.hpp"
#include "adapter/status_command.hpp"

int main(int argc, char** argv) {
    using namespace microcare::adapter;
    CLI::App app{
        "MicroCare: microneedling contraindication checks and aftercare plans over FHIR R4"};
    app.require_subcommand(1);

    EvaluateArgs evaluate;
    CLI::App* evaluate_cmd =
        app.add_subcommand("evaluate",
                           "Assess one microneedling encounter of a FHIR Bundle offline; print the "
                           "transaction Bundle MicroCare would write");
    evaluate_cmd->add_option("--rules", evaluate.rules_path,
                             "Rule pack (default: the shipped pack)");
    evaluate_cmd->add_option("--now", evaluate.now, "Evaluation time, a FHIR instant");
    evaluate_cmd->add_option("--encounter", evaluate.encounter,
                             "Encounter id or reference (default: the latest microneedling one)");
    evaluate_cmd->add_flag("--compact", evaluate.compact, "Print the Bundle on one line");
    evaluate_cmd
        ->add_option("RECORD", evaluate.record_path, "FHIR Bundle with the patient's record")
        ->required();

    std::string pack_path;
    CLI::App* rules_cmd = app.add_subcommand("rules", "Rule pack tools");
    rules_cmd->require_subcommand(1);
    CLI::App* check_cmd = rules_cmd->add_subcommand("check", "Validate a rule pack");
    check_cmd->add_option("FILE", pack_path, "Rule pack JSON")->required();
    ReplayArgs replay;
    CLI::App* replay_cmd = rules_cmd->add_subcommand(
        "replay",
        "Show what a new pack would change for the encounters already assessed (read again "
        "from the EHR); with --apply, queue a re-assessment of each changed one");
    replay_cmd->add_option("--config", replay.config_path, "Service configuration (JSON)")
        ->required();
    replay_cmd->add_option("--rules", replay.rules_path, "The new rule pack")->required();
    replay_cmd->add_option("--since", replay.since,
                           "Encounters assessed from this FHIR date or instant");
    replay_cmd->add_option("--until", replay.until,
                           "Encounters assessed up to this FHIR date or instant");
    replay_cmd->add_option("--encounter", replay.encounter,
                           "Only this Encounter (id or reference)");
    replay_cmd->add_option("--rate", replay.rate, "EHR requests per second at most (default 5)");
    replay_cmd->add_option("--now", replay.now, "Evaluation time, a FHIR instant");
    replay_cmd->add_flag("--apply", replay.apply,
                         "Queue the re-assessments and audit the replay (the service stopped)");

    std::string config_path;
    CLI::App* serve_cmd = app.add_subcommand("serve", "Run the service the EHR calls");
    serve_cmd->add_option("--config", config_path, "Service configuration (JSON)")->required();

    CLI::App* config_cmd = app.add_subcommand("config", "Configuration tools");
    config_cmd->require_subcommand(1);
    CLI::App* config_check_cmd = config_cmd->add_subcommand("check", "Validate a configuration");
    bool connect = false;
    config_check_cmd->add_option("FILE", config_path, "Service configuration (JSON)");
    config_check_cmd->add_option("--config", config_path, "Service configuration (JSON)");
    config_check_cmd->add_flag(
        "--connect", connect,
        "Then reach the EHR as serve would: TLS verified, SMART token, [base]/metadata");

    CLI::App* status_cmd = app.add_subcommand(
        "status",
        "Version, rule pack, jobs by state, oldest waiting job, dead letters and the audit "
        "trail's health, read from the configured files (no network)");
    status_cmd->add_option("--config", config_path, "Service configuration (JSON)")->required();

    JobsArgs jobs;
    CLI::App* jobs_cmd = app.add_subcommand("jobs", "Inspect, retry and purge the service's jobs");
    jobs_cmd->require_subcommand(1);
    CLI::App* jobs_list = jobs_cmd->add_subcommand(
        "list", "List jobs, newest first, then the total per state of the whole store");
    jobs_list->add_option("--limit", jobs.limit, "At most this many (50)");
    jobs_list->add_option("--encounter", jobs.encounter, "Encounter/id or id");
    CLI::App* jobs_show = jobs_cmd->add_subcommand("show", "Show one job");
    jobs_show->add_option("ID", jobs.id)->required();
    CLI::App* jobs_retry = jobs_cmd->add_subcommand(
        "retry", "Queue done or dead jobs again: by id, or every one --state and --since select");
    jobs_retry->add_option("ID", jobs.ids, "Job ids");
    for (CLI::App* command : {jobs_list, jobs_retry}) {
        command->add_option("--state", jobs.state, "queued, running, done or dead");
        command->add_option("--since", jobs.since, "Changed at or after this FHIR date or instant");
    }
    CLI::App* jobs_purge = jobs_cmd->add_subcommand(
        "purge", "Delete done jobs last changed before a date (never queued, running or dead)");
    jobs_purge->add_option("--done-before", jobs.done_before, "A FHIR date or instant")->required();
    for (CLI::App* command : {jobs_list, jobs_show, jobs_retry, jobs_purge}) {
        command->add_option("--config", jobs.config_path, "Service configuration naming the store");
        command->add_option("--store", jobs.store_path,
                            "The store: its SQLite file, or a postgresql:// URL");
    }

    CLI::App* store_cmd = app.add_subcommand("store", "The store's schema");
    store_cmd->require_subcommand(1);
    CLI::App* store_migrate = store_cmd->add_subcommand(
        "migrate", "Bring the store's schema up to date (serve does it too); prints from -> to");
    store_migrate->add_option("--config", jobs.config_path,
                              "Service configuration naming the store");
    store_migrate->add_option("--store", jobs.store_path,
                              "The store: its SQLite file, or a postgresql:// URL");

    BackupArgs backup;
    CLI::App* backup_cmd = app.add_subcommand(
        "backup",
        "Back up the store, the audit trail with its checkpoint, the rule pack and the "
        "configuration into a new folder, while the service runs");
    CLI::App* restore_cmd = app.add_subcommand(
        "restore",
        "Put a backup in the places the configuration names (the service stopped); refused "
        "before anything is replaced when the backup is incomplete or does not verify");
    for (CLI::App* command : {backup_cmd, restore_cmd}) {
        command->add_option("--config", backup.config_path, "Service configuration (JSON)")
            ->required();
        command->add_option("DIR", backup.dir, "The backup folder")->required();
    }

    AuditArgs audit;
    CLI::App* audit_cmd = app.add_subcommand("audit", "Audit trail tools for auditors");
    audit_cmd->require_subcommand(1);
    CLI::App* audit_verify = audit_cmd->add_subcommand(
        "verify",
        "Check every file, seal and link of the trail and its checkpoint; name each edited, "
        "removed, reordered, forged or cut record. Exit 0 only when all is intact");
    audit_verify->add_option("--format", audit.format, "text (default) or json");
    CLI::App* audit_show = audit_cmd->add_subcommand(
        "show", "What MicroCare did for a patient, an encounter, a rule or a period");
    audit_show->add_option("--patient", audit.patient, "Patient/id or id");
    audit_show->add_option("--encounter", audit.encounter, "Encounter/id or id");
    audit_show->add_option("--rule", audit.rule, "A rule id of the pack");
    audit_show->add_option("--format", audit.format, "table (default) or json");
    CLI::App* audit_export =
        audit_cmd->add_subcommand("export", "The sealed records as JSON lines, for a SIEM");
    audit_export->add_option("--after", audit.after, "Only records after this seq");
    for (CLI::App* command : {audit_show, audit_export}) {
        command->add_option("--since", audit.since, "From this FHIR date or instant");
        command->add_option("--until", audit.until, "Up to this FHIR date or instant");
    }
    for (CLI::App* command : {audit_verify, audit_show, audit_export}) {
        command->add_option("--config", audit.config_path,
                            "Service configuration naming the trail, its key and checkpoint");
        command->add_option("FILE", audit.file, "The trail's active file (without --config)");
        command
            ->add_option("--key-file", audit.key_files,
                         "A key the trail was sealed with (repeatable: older keys too)")
            ->allow_extra_args(false);  // one file each time, so FILE after it stays FILE
        command->add_option("--checkpoint", audit.checkpoint_path,
                            "The trail's checkpoint (with FILE; default FILE.checkpoint)");
    }

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : 2;
    }
    try {
        if (*evaluate_cmd) return RunEvaluate(evaluate, std::cout, std::cerr);
        if (*check_cmd) return RunRulesCheck(pack_path, std::cout, std::cerr);
        if (*replay_cmd) return RunRulesReplay(replay, std::cout, std::cerr);
        if (*serve_cmd) return RunServe(config_path, std::cerr);
        if (*status_cmd) return RunStatus(config_path, std::cout, std::cerr);
        if (*config_check_cmd) {
            if (config_path.empty()) {
                std::cerr << "config check: name the configuration: FILE or --config FILE\n";
                return 2;
            }
            return RunConfigCheck(config_path, std::cout, std::cerr, connect);
        }
        if (*jobs_list) return RunJobsList(jobs, std::cout, std::cerr);
        if (*jobs_show) return RunJobsShow(jobs, std::cout, std::cerr);
        if (*jobs_retry) return RunJobsRetry(jobs, std::cout, std::cerr);
        if (*jobs_purge) return RunJobsPurge(jobs, std::cout, std::cerr);
        if (*store_migrate) return RunStoreMigrate(jobs, std::cout, std::cerr);
        if (*backup_cmd) return RunBackup(backup, std::cout, std::cerr);
        if (*restore_cmd) return RunRestore(backup, std::cout, std::cerr);
        if (*audit_verify) return RunAuditVerify(audit, std::cout, std::cerr);
        if (*audit_show) return RunAuditShow(audit, std::cout, std::cerr);
        if (*audit_export) return RunAuditExport(audit, std::cout, std::cerr);
    } catch (const std::exception& e) {
        std::cerr << "microcare: internal error: " << e.what() << "\n";
        return 1;
    }
    return 2;
}
