#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace microcare::adapter {

// The `audit` section of the service configuration (config/README.md).
struct AuditSettings {
    // The PostgreSQL store's URL when the trail is kept in its database (set from store.url):
    // one chain for every replica. Empty: the trail is the files below.
    std::string database;
    // The active file of the trail; rotated files sit next to it as `<path>.<first record>`.
    std::string path = "var/audit.log";
    // A file holding the HMAC key (at least 32 bytes; a trailing newline is ignored). Empty: the
    // chain is plain SHA-256, which shows accidents but not a rewrite by someone who can write
    // the file. The key itself is never logged or written anywhere.
    std::string key_file;
    std::string key;  // read from key_file by the configuration loader
    // The signed head of the trail (record count, last hash, file, time), kept apart from the
    // trail. Empty: `<path>.checkpoint`. The configuration loader puts it next to the store.
    std::string checkpoint_path;
    std::uint64_t checkpoint_every = 100;              // records between checkpoints
    std::chrono::seconds checkpoint_interval{60};      // ... or seconds, whichever comes first
    std::uint64_t rotate_bytes = 64ull * 1024 * 1024;  // 0: never rotate
    std::chrono::hours rotate_every{0};                // ... or when the file is this old; 0: never
    std::uint32_t keep_files = 0;                      // rotated files kept; 0: all of them
    std::chrono::hours keep_for{0};  // rotated files kept while younger; 0: however old
    // Every version MicroCare writes to the EHR is also recorded there as a FHIR AuditEvent
    // (IHE BALP create/update), posted as a batch right after the transaction.
    bool fhir_audit_events = true;
};

}  // namespace microcare::adapter
