#include "adapter/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>

#include "fhir/date_time.hpp"
#include "fhir/json.hpp"

namespace microcare::adapter {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mutex;

std::string_view Name(LogLevel level) {
    switch (level) {
        case LogLevel::kDebug:
            return "debug";
        case LogLevel::kInfo:
            return "info";
        case LogLevel::kWarning:
            return "warning";
        case LogLevel::kError:
            return "error";
    }
    return "info";
}

}  // namespace

void Log::SetLevel(LogLevel level) { g_level = static_cast<int>(level); }

bool Log::Enabled(LogLevel level) { return static_cast<int>(level) >= g_level.load(); }

void Log::Write(LogLevel level, std::string_view message, std::initializer_list<Field> fields) {
    if (!Enabled(level)) return;
    const auto now =
        std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now());
    fhir::JsonWriter line;
    line.StartObject();
    line.Field("ts", fhir::FormatInstant(now, 0));
    line.Field("level", Name(level));
    line.Field("msg", message);
    for (const Field& field : fields) line.Field(field.key, field.value);
    line.EndObject();
    std::lock_guard lock(g_mutex);
    std::fwrite(line.View().data(), 1, line.View().size(), stderr);
    std::fputc('\n', stderr);
    std::fflush(stderr);
}

std::optional<LogLevel> ParseLogLevel(std::string_view name) {
    for (LogLevel level :
         {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning, LogLevel::kError}) {
        if (Name(level) == name) return level;
    }
    return std::nullopt;
}

}  // namespace microcare::adapter
