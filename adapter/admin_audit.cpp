#include "adapter/admin_audit.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <filesystem>
#include <memory>
#include <mutex>
#include <ostream>
#include <vector>

#include "adapter/audit/audit_file.hpp"
#include "adapter/audit/audit_log.hpp"
#include "adapter/configured_trail.hpp"
#include "adapter/store/job_store.hpp"

namespace microcare::adapter {

std::string OsUser() {
    const uid_t uid = ::geteuid();
    if (const passwd* entry = ::getpwuid(uid); entry != nullptr && entry->pw_name != nullptr) {
        return entry->pw_name;
    }
    return "uid " + std::to_string(uid);
}

namespace {

// Appends the notes' records, all queued at once so that the trail's writer makes them durable
// with one sync (there is a note for every trigger); the result of each, in order.
std::vector<Result<void>> AppendAll(AuditLog& audit, const std::vector<AdminNote>& notes) {
    struct Outcomes {
        std::mutex mutex;
        std::condition_variable done;
        std::size_t left = 0;
        std::vector<Result<void>> results;
    };
    auto outcomes = std::make_shared<Outcomes>();
    outcomes->left = notes.size();
    outcomes->results.resize(notes.size());
    for (std::size_t i = 0; i < notes.size(); ++i) {
        AuditLog::Record record{notes[i].event, {{"note", std::to_string(notes[i].id)}}};
        record.fields.insert(record.fields.end(), notes[i].fields.begin(), notes[i].fields.end());
        audit.AppendAsync(std::move(record), [outcomes, i](Result<void> appended) {
            std::lock_guard lock(outcomes->mutex);
            outcomes->results[i] = appended;
            if (--outcomes->left == 0) outcomes->done.notify_all();
        });
    }
    std::unique_lock lock(outcomes->mutex);
    outcomes->done.wait(lock, [&] { return outcomes->left == 0; });
    return std::move(outcomes->results);
}

}  // namespace

Result<std::size_t> WriteAdminNotes(JobStore& store, AuditLog& audit) {
    std::size_t written = 0;
    for (;;) {
        auto notes = store.PendingAdminNotes(500);
        if (!notes) return notes.error();
        if (notes->empty()) return written;
        const std::vector<Result<void>> appended = AppendAll(audit, *notes);
        for (std::size_t i = 0; i < appended.size(); ++i) {
            if (appended[i]) continue;
            // Those before it are in the trail: forget them, keep this one and the rest.
            if (i > 0) static_cast<void>(store.ForgetAdminNotes((*notes)[i - 1].id));
            return appended[i].error();
        }
        written += notes->size();
        if (auto forgotten = store.ForgetAdminNotes(notes->back().id); !forgotten) {
            return forgotten.error();
        }
    }
}

void RecordAdminNotes(const AuditSettings* settings, JobStore& store, std::ostream& out) {
    if (settings == nullptr) {
        out << "audit: recorded in the store; the service writes it into the audit trail\n";
        return;
    }
    // A trail in the database takes any number of writers; one in files takes one.
    const bool files = settings->database.empty();
    // Root writing the trail of a service that runs as another user would leave files that
    // user cannot read (a new checkpoint, a rotated file): the service writes it instead.
    struct stat folder {};
    const std::string dir = std::filesystem::path(settings->path).parent_path().string();
    if (files && ::geteuid() == 0 && ::stat(dir.empty() ? "." : dir.c_str(), &folder) == 0 &&
        folder.st_uid != 0) {
        out << "audit: recorded in the store; the service writes it into the trail when it runs "
               "(root does not write the trail of a service that runs as another user)\n";
        return;
    }
    // Only to see whether a service holds the trail: AuditLog::Open takes the lock for itself.
    if (files && !TrailLock::Acquire(settings->path)) {
        out << "audit: the running service holds the trail; it writes the record within seconds\n";
        return;
    }
    std::string problem;
    auto audit = OpenConfiguredTrail(*settings, {}, &problem);
    if (!audit) {
        out << "audit: recorded in the store; the trail cannot be opened now (" << problem
            << "); the service writes the record when it starts\n";
        return;
    }
    auto written = WriteAdminNotes(store, **audit);
    static_cast<void>((*audit)->Close());
    if (written) {
        out << "audit: recorded in " << (files ? settings->path : "the database") << "\n";
    } else {
        out << "audit: recorded in the store; writing the trail failed ("
            << written.error().message() << "); the service writes it when it starts\n";
    }
}

}  // namespace microcare::adapter
