#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "adapter/audit/audit_file.hpp"
#include "adapter/clock.hpp"
#include "adapter/error.hpp"
#include "adapter/reload_report.hpp"
#include "adapter/service_config.hpp"

namespace microcare::adapter {

class JobStore;

// Where tests inject faults the real world causes (a full disk under the audit trail); the
// defaults are the real files.
struct ServiceSeams {
    AuditFileOpener audit_file;  // default: OpenAuditFile
    // The wall clock of every time decision (job ages and retries, leases, the EHR's last
    // success): tests pass a set one to live hours of an outage in seconds.
    WallClock now = SystemNow;
};

// The running MicroCare service, built from a validated configuration: the HTTP(S) endpoint,
// the durable store, the worker and the FHIR client to the EHR. main() builds one and waits;
// tests build one on port 0.
class Service {
public:
    // Loads the rule pack, opens the store and binds the port; nothing runs yet. A reload
    // rereads `config_path` (empty: only the pack is reread, from config.rules_path).
    static Result<std::unique_ptr<Service>> Create(const ServiceConfig& config,
                                                   const std::string& config_path = {},
                                                   ServiceSeams seams = {});
    ~Service();

    unsigned short port() const;
    JobStore& store();
    // `handle_signals`: SIGTERM/SIGINT stop the service, SIGHUP reloads; armed before the
    // "listening" log line, so a signal sent after it is never the default action.
    void Start(bool handle_signals = false);
    // Rereads the configuration and the rule pack and puts them in force when valid (see
    // Reloader). What SIGHUP and POST /admin/reload do; blocking.
    ReloadReport Reload(std::string_view trigger);
    // Graceful: stop accepting, let requests and jobs in flight finish within the grace
    // period, then close the store. Safe to call more than once.
    void Stop();
    // Blocks until Stop() (or SIGTERM/SIGINT when `handle_signals`).
    void Wait(bool handle_signals);

private:
    explicit Service(WallClock now);
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace microcare::adapter
