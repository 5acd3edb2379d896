#include "fhir/date_time.hpp"

namespace microcare::fhir {
namespace {

using std::chrono::days;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

class Scanner {
public:
    explicit Scanner(std::string_view text) : text_(text) {}

    bool Done() const { return pos_ == text_.size(); }
    bool Peek(char c) const { return pos_ < text_.size() && text_[pos_] == c; }
    bool Take(char c) {
        if (!Peek(c)) return false;
        ++pos_;
        return true;
    }
    // Exactly `count` decimal digits.
    bool Digits(int count, int& out) {
        if (pos_ + static_cast<std::size_t>(count) > text_.size()) return false;
        int value = 0;
        for (int i = 0; i < count; ++i) {
            char c = text_[pos_ + static_cast<std::size_t>(i)];
            if (c < '0' || c > '9') return false;
            value = value * 10 + (c - '0');
        }
        pos_ += static_cast<std::size_t>(count);
        out = value;
        return true;
    }
    // One or more digits, of which the first three are kept as milliseconds.
    bool Fraction(int& millis) {
        std::size_t start = pos_;
        int value = 0;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
            if (pos_ - start < 3) value = value * 10 + (text_[pos_] - '0');
            ++pos_;
        }
        std::size_t count = pos_ - start;
        if (count == 0) return false;
        for (std::size_t i = count; i < 3; ++i) value *= 10;
        millis = value;
        return true;
    }
    // A positive number of up to 9 digits followed by a designator letter.
    bool Component(int& value, char& designator) {
        std::size_t start = pos_;
        long long n = 0;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
            n = n * 10 + (text_[pos_] - '0');
            if (pos_ - start >= 9) return false;
            ++pos_;
        }
        if (pos_ == start || pos_ >= text_.size()) return false;
        value = static_cast<int>(n);
        designator = text_[pos_++];
        return true;
    }

private:
    std::string_view text_;
    std::size_t pos_ = 0;
};

std::chrono::year_month_day Ymd(int year, int month, int day) {
    return std::chrono::year{year} / std::chrono::month{static_cast<unsigned>(month)} /
           std::chrono::day{static_cast<unsigned>(day)};
}

unsigned LastDayOfMonth(int year, int month) {
    return static_cast<unsigned>(
        (std::chrono::year{year} / std::chrono::month{static_cast<unsigned>(month)} /
         std::chrono::last)
            .day());
}

// Appends `value` as exactly `width` decimal digits.
void AppendDigits(std::string& out, int value, int width) {
    char digits[8];
    for (int i = width - 1; i >= 0; --i) {
        digits[i] = static_cast<char>('0' + value % 10);
        value /= 10;
    }
    out.append(digits, static_cast<std::size_t>(width));
}

void AppendOffset(std::string& out, int offset_minutes) {
    if (offset_minutes == 0) {
        out += 'Z';
        return;
    }
    const int magnitude = offset_minutes < 0 ? -offset_minutes : offset_minutes;
    out += offset_minutes < 0 ? '-' : '+';
    AppendDigits(out, magnitude / 60, 2);
    out += ':';
    AppendDigits(out, magnitude % 60, 2);
}

}  // namespace

std::optional<DateTime> DateTime::Parse(std::string_view text) {
    DateTime result;
    Scanner in(text);
    if (!in.Digits(4, result.year_) || result.year_ < 1) return std::nullopt;
    result.precision_ = DatePrecision::kYear;
    if (in.Take('-')) {
        if (!in.Digits(2, result.month_) || result.month_ < 1 || result.month_ > 12) {
            return std::nullopt;
        }
        result.precision_ = DatePrecision::kMonth;
        if (in.Take('-')) {
            if (!in.Digits(2, result.day_) || result.day_ < 1 ||
                static_cast<unsigned>(result.day_) > LastDayOfMonth(result.year_, result.month_)) {
                return std::nullopt;
            }
            result.precision_ = DatePrecision::kDay;
            if (in.Take('T')) {
                if (!in.Digits(2, result.hour_) || result.hour_ > 23 || !in.Take(':') ||
                    !in.Digits(2, result.minute_) || result.minute_ > 59 || !in.Take(':') ||
                    !in.Digits(2, result.second_) || result.second_ > 60) {
                    return std::nullopt;
                }
                // A leap second is read as the last millisecond of its minute.
                if (result.second_ == 60) {
                    result.second_ = 59;
                    result.millis_ = 999;
                }
                if (in.Take('.') && !in.Fraction(result.millis_)) return std::nullopt;
                result.precision_ = DatePrecision::kSecond;
                if (in.Take('Z')) {
                    result.offset_minutes_ = 0;
                } else if (in.Peek('+') || in.Peek('-')) {
                    int sign = in.Take('+') ? 1 : (in.Take('-'), -1);
                    int oh = 0;
                    int om = 0;
                    if (!in.Digits(2, oh) || !in.Take(':') || !in.Digits(2, om) || oh > 14 ||
                        om > 59 || (oh == 14 && om != 0)) {
                        return std::nullopt;
                    }
                    result.offset_minutes_ = sign * (oh * 60 + om);
                }
            }
        }
    }
    if (!in.Done()) return std::nullopt;
    return result;
}

DateTime DateTime::FromInstant(Instant instant, int offset_minutes) {
    auto local = instant + minutes(offset_minutes);
    auto day_point = std::chrono::floor<days>(local);
    std::chrono::year_month_day ymd{day_point};
    std::chrono::hh_mm_ss<milliseconds> tod{local - day_point};
    DateTime result;
    result.year_ = static_cast<int>(ymd.year());
    result.month_ = static_cast<int>(static_cast<unsigned>(ymd.month()));
    result.day_ = static_cast<int>(static_cast<unsigned>(ymd.day()));
    result.hour_ = static_cast<int>(tod.hours().count());
    result.minute_ = static_cast<int>(tod.minutes().count());
    result.second_ = static_cast<int>(tod.seconds().count());
    result.millis_ = static_cast<int>(tod.subseconds().count());
    result.precision_ = DatePrecision::kSecond;
    result.offset_minutes_ = offset_minutes;
    return result;
}

Instant DateTime::Earliest(int default_offset_minutes) const {
    int offset = offset_minutes_.value_or(default_offset_minutes);
    int month = precision_ == DatePrecision::kYear ? 1 : month_;
    int day = precision_ <= DatePrecision::kMonth ? 1 : day_;
    auto local = std::chrono::sys_days{Ymd(year_, month, day)} + hours(hour_) + minutes(minute_) +
                 seconds(second_) + milliseconds(millis_);
    return Instant{local - minutes(offset)};
}

Instant DateTime::Latest(int default_offset_minutes) const {
    int offset = offset_minutes_.value_or(default_offset_minutes);
    if (precision_ == DatePrecision::kSecond) return Earliest(offset);
    int month = precision_ == DatePrecision::kYear ? 12 : month_;
    int day =
        precision_ == DatePrecision::kDay ? day_ : static_cast<int>(LastDayOfMonth(year_, month));
    auto local = std::chrono::sys_days{Ymd(year_, month, day)} + days(1) - milliseconds(1);
    return Instant{local - minutes(offset)};
}

std::string DateTime::ToString() const {
    std::string text;
    text.reserve(29);
    AppendDigits(text, year_, 4);
    if (precision_ == DatePrecision::kYear) return text;
    text += '-';
    AppendDigits(text, month_, 2);
    if (precision_ == DatePrecision::kMonth) return text;
    text += '-';
    AppendDigits(text, day_, 2);
    if (precision_ == DatePrecision::kDay) return text;
    text += 'T';
    AppendDigits(text, hour_, 2);
    text += ':';
    AppendDigits(text, minute_, 2);
    text += ':';
    AppendDigits(text, second_, 2);
    if (millis_ != 0) {
        text += '.';
        AppendDigits(text, millis_, 3);
    }
    if (offset_minutes_) AppendOffset(text, *offset_minutes_);
    return text;
}

std::optional<CalendarDuration> CalendarDuration::Parse(std::string_view text) {
    Scanner in(text);
    if (!in.Take('P') || in.Done()) return std::nullopt;
    CalendarDuration d;
    bool time_part = false;
    // Designators must come in the order of the standard, each at most once.
    const std::string_view date_order = "YMWD";
    const std::string_view time_order = "HMS";
    std::size_t next = 0;
    bool any = false;
    while (!in.Done()) {
        if (!time_part && in.Take('T')) {
            if (in.Done()) return std::nullopt;
            time_part = true;
            next = 0;
            continue;
        }
        int value = 0;
        char designator = 0;
        if (!in.Component(value, designator)) return std::nullopt;
        std::string_view order = time_part ? time_order : date_order;
        std::size_t at = order.find(designator, next);
        if (at == std::string_view::npos) return std::nullopt;
        next = at + 1;
        any = true;
        switch (time_part ? designator + 128 : designator) {
            case 'Y':
                d.years = value;
                break;
            case 'M':
                d.months = value;
                break;
            case 'W':
                d.weeks = value;
                break;
            case 'D':
                d.days = value;
                break;
            case 'H' + 128:
                d.hours = value;
                break;
            case 'M' + 128:
                d.minutes = value;
                break;
            case 'S' + 128:
                d.seconds = value;
                break;
            default:
                return std::nullopt;
        }
    }
    if (!any) return std::nullopt;
    return d;
}

std::string CalendarDuration::ToString() const {
    std::string text = "P";
    auto part = [&text](int value, char designator) {
        if (value != 0) text += std::to_string(value) + designator;
    };
    part(years, 'Y');
    part(months, 'M');
    part(weeks, 'W');
    part(days, 'D');
    if (hours || minutes || seconds) {
        text += 'T';
        part(hours, 'H');
        part(minutes, 'M');
        part(seconds, 'S');
    }
    if (text == "P") text = "P0D";
    return text;
}

Instant AddCalendar(Instant instant, const CalendarDuration& duration, int sign,
                    int offset_minutes) {
    const int s = sign > 0 ? 1 : -1;
    auto local = instant + minutes(offset_minutes);
    auto day_point = std::chrono::floor<days>(local);
    auto time_of_day = local - day_point;
    std::chrono::year_month_day ymd{day_point};

    int total_months = static_cast<int>(ymd.year()) * 12 +
                       static_cast<int>(static_cast<unsigned>(ymd.month())) - 1 +
                       s * (duration.years * 12 + duration.months);
    int year = total_months / 12;
    int month = total_months % 12 + 1;
    unsigned day = std::min(static_cast<unsigned>(ymd.day()), LastDayOfMonth(year, month));
    auto moved = std::chrono::sys_days{Ymd(year, month, static_cast<int>(day))} +
                 days(s * (duration.weeks * 7 + duration.days)) + time_of_day +
                 hours(s * duration.hours) + minutes(s * duration.minutes) +
                 seconds(s * duration.seconds);
    return Instant{std::chrono::floor<milliseconds>(moved) - minutes(offset_minutes)};
}

std::string FormatInstant(Instant instant, int offset_minutes) {
    DateTime value = DateTime::FromInstant(std::chrono::floor<seconds>(instant), offset_minutes);
    return value.ToString();
}

std::string FormatDate(Instant instant, int offset_minutes) {
    std::string text = FormatInstant(instant, offset_minutes);
    return text.substr(0, 10);
}

}  // namespace microcare::fhir
