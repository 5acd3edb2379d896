#include "adapter/time_bound.hpp"

#include <ostream>

namespace microcare::adapter {

std::optional<fhir::Instant> ParseTimeBound(const std::string& text, const char* option,
                                            bool latest, std::ostream& err, bool& bad) {
    if (text.empty()) return std::nullopt;
    auto parsed = fhir::DateTime::Parse(text);
    if (!parsed) {
        err << option << ": \"" << text
            << "\" is not a FHIR date, dateTime or instant (2026-01-31, "
               "2026-01-31T10:00:00Z)\n";
        bad = true;
        return std::nullopt;
    }
    return latest ? parsed->Latest() : parsed->Earliest();
}

std::optional<fhir::Instant> ParseInstant(const std::string& text) {
    auto parsed = fhir::DateTime::Parse(text);
    if (!parsed || parsed->precision() != fhir::DatePrecision::kSecond ||
        !parsed->offset_minutes()) {
        return std::nullopt;
    }
    return parsed->Earliest();
}

}  // namespace microcare::adapter
