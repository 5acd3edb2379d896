#pragma once

#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace microcare::adapter {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// One JSON object per line on stderr: {"ts":..,"level":..,"msg":..,<fields>}. Fields carry
// resource ids, job ids and error kinds, never names, birth dates, free text or bodies: patient
// data stays out of logs.
class Log {
public:
    // A temporary string passed as a value lives until the logging call returns.
    struct Field {
        Field(std::string_view k, std::string_view v) : key(k), value(v) {}
        std::string_view key;
        std::string_view value;
    };

    static void SetLevel(LogLevel level);
    static bool Enabled(LogLevel level);
    static void Write(LogLevel level, std::string_view message,
                      std::initializer_list<Field> fields);

    static void Info(std::string_view message, std::initializer_list<Field> fields = {}) {
        Write(LogLevel::kInfo, message, fields);
    }
    static void Warning(std::string_view message, std::initializer_list<Field> fields = {}) {
        Write(LogLevel::kWarning, message, fields);
    }
    static void Error(std::string_view message, std::initializer_list<Field> fields = {}) {
        Write(LogLevel::kError, message, fields);
    }
    static void Debug(std::string_view message, std::initializer_list<Field> fields = {}) {
        Write(LogLevel::kDebug, message, fields);
    }
};

std::optional<LogLevel> ParseLogLevel(std::string_view name);

}  // namespace microcare::adapter
