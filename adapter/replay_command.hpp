#pragma once

#include <iosfwd>
#include <optional>
#include <string>

namespace microcare::adapter {

// `microcare rules replay`: what a new rule pack would change for the encounters already
// assessed. Each encounter whose assessment job is done (in the window, or the one named) is
// read again from the EHR, at most `rate` requests a second, and evaluated under the pack in
// force (the configuration's `rules.path`) and under `rules_path`; the differences are printed
// per encounter (findings added, removed or with another severity, by rule and evidence
// resource; scheduled activities added, removed or moved), then the totals. Nothing is written
// unless `apply`: then each encounter whose outcome changes gets one re-assessment job (a normal
// assessment; not a second one while the first is pending) and the audit trail a `replay`
// record.
struct ReplayArgs {
    std::string config_path;
    std::string rules_path;  // the new pack
    std::string since;       // FHIR date, dateTime or instant: jobs finished from then
    std::string until;       // ... up to then
    std::string encounter;   // only this one ("Encounter/123" or "123")
    bool apply = false;
    double rate = 5;                 // EHR requests per second
    std::optional<std::string> now;  // evaluation time, a FHIR instant (default: the clock)
};

// 0 when every encounter was compared (and, with `apply`, queued and audited); 1 when the
// command could not run (store, audit trail, EHR connection) or some encounter could not be
// read or assessed (each is named); 2 on bad input: the configuration, either pack (every
// problem with its JSON path, as `rules check` prints them) or an option.
int RunRulesReplay(const ReplayArgs& args, std::ostream& out, std::ostream& err);

}  // namespace microcare::adapter
