#include "adapter/store/job_rows.hpp"

#include "fhir/issues.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter::detail {

std::optional<JobState> StateFromText(std::string_view text) {
    for (JobState state :
         {JobState::kQueued, JobState::kRunning, JobState::kDone, JobState::kDead}) {
        if (ToString(state) == text) {
            return state;
        }
    }
    return std::nullopt;
}

std::string EncodeNoteFields(const AdminNote& note) {
    fhir::JsonWriter fields;
    fields.StartObject();
    for (const auto& [key, value] : note.fields) {
        fields.Field(key, value);
    }
    fields.EndObject();
    return std::string(fields.View());
}

bool DecodeNoteFields(const std::string& text, AdminNote& note) {
    fhir::IssueList ignored;
    auto doc = fhir::JsonDocument::Parse(text, ignored);
    if (!doc) {
        return false;
    }
    doc->Root().ForEachMember([&note](std::string_view key, fhir::Node value) {
        if (value.IsString()) {
            note.fields.emplace_back(std::string(key), std::string(value.String()));
        }
    });
    return true;
}

void AddRetriedFields(const std::vector<std::int64_t>& retried, AdminNote& note) {
    std::string list;
    for (std::int64_t id : retried) {
        list += (list.empty() ? "" : " ") + std::to_string(id);
    }
    note.fields.emplace_back("jobs", list);
    note.fields.emplace_back("count", std::to_string(retried.size()));
}

}  // namespace microcare::adapter::detail
