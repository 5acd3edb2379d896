#include "adapter/admin_audit.hpp"

#include <pwd.h>
#include <unistd.h>

#include <vector>

#include "adapter/audit/audit_log.hpp"
#include "adapter/store/job_store.hpp"

namespace microcare::adapter {

std::string OsUser() {
    const uid_t uid = ::geteuid();
    if (const passwd* entry = ::getpwuid(uid); entry != nullptr && entry->pw_name != nullptr) {
        return entry->pw_name;
    }
    return "uid " + std::to_string(uid);
}

Result<std::size_t> WriteAdminNotes(JobStore& store, AuditLog& audit) {
    std::size_t written = 0;
    for (;;) {
        auto notes = store.PendingAdminNotes(100);
        if (!notes) return notes.error();
        if (notes->empty()) return written;
        for (const AdminNote& note : *notes) {
            const std::string id = std::to_string(note.id);
            std::vector<AuditLog::Field> fields{{"note", id}};
            for (const auto& [key, value] : note.fields) fields.emplace_back(key, value);
            if (auto appended = audit.Append(note.event, fields); !appended) {
                // Those before it are in the trail: forget them, keep this one and the rest.
                if (note.id > notes->front().id) {
                    static_cast<void>(store.ForgetAdminNotes(note.id - 1));
                }
                return appended.error();
            }
            ++written;
        }
        if (auto forgotten = store.ForgetAdminNotes(notes->back().id); !forgotten) {
            return forgotten.error();
        }
    }
}

}  // namespace microcare::adapter
