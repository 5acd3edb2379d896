#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "fhir/date_time.hpp"

namespace microcare::adapter {

// A command line's `--since`/`--until`: a FHIR date, dateTime or instant (ISO 8601), taken at its
// earliest moment for a lower bound and at its latest for an upper one, so that `--until
// 2026-01-31` covers the whole day. Empty text is no bound. A bad value is reported on `err`
// with the option's name and sets `bad`.
std::optional<fhir::Instant> ParseTimeBound(const std::string& text, const char* option,
                                            bool latest, std::ostream& err, bool& bad);

// A command line's `--now`: a FHIR instant (seconds and an offset); nullopt otherwise.
std::optional<fhir::Instant> ParseInstant(const std::string& text);

}  // namespace microcare::adapter
