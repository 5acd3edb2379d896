#include "fhir/date_time.hpp"

#include <gtest/gtest.h>

namespace microcare::fhir {
namespace {

Instant At(const char* text) {
    auto parsed = DateTime::Parse(text);
    EXPECT_TRUE(parsed.has_value()) << text;
    return parsed->Earliest();
}

TEST(DateTime, PartialDatesSpanTheirWholePeriod) {
    auto year = DateTime::Parse("2024");
    ASSERT_TRUE(year);
    EXPECT_EQ(year->precision(), DatePrecision::kYear);
    EXPECT_EQ(year->Earliest(0), At("2024-01-01T00:00:00Z"));
    EXPECT_EQ(year->Latest(0), At("2024-12-31T23:59:59.999Z"));

    auto month = DateTime::Parse("2024-02");
    EXPECT_EQ(month->Latest(0), At("2024-02-29T23:59:59.999Z"));  // leap year
    auto day = DateTime::Parse("2023-02-28");
    EXPECT_EQ(day->Latest(0), At("2023-02-28T23:59:59.999Z"));
}

TEST(DateTime, DatesWithoutTimeAreReadInTheCallersOffset) {
    auto day = DateTime::Parse("2026-11-20");
    EXPECT_EQ(day->Earliest(60), At("2026-11-19T23:00:00Z"));
    EXPECT_EQ(day->Latest(-300), At("2026-11-21T04:59:59.999Z"));
}

TEST(DateTime, OffsetsAreHonoured) {
    EXPECT_EQ(At("2026-11-20T10:00:00+01:00"), At("2026-11-20T09:00:00Z"));
    EXPECT_EQ(At("2026-11-20T10:00:00-05:30"), At("2026-11-20T15:30:00Z"));
    EXPECT_EQ(At("2026-11-20T10:00:00.1234Z") - At("2026-11-20T10:00:00Z"),
              std::chrono::milliseconds(123));
}

TEST(DateTime, RejectsWhatIsNotAFhirDate) {
    for (const char* bad : {"", "24", "2024-13", "2024-02-30", "2024-1-01", "2024-01-01T25:00:00Z",
                            "2024-01-01T10:00Z", "2024-01-01T10:00:00+15:00", "2024-01-01 10:00:00",
                            "2024-01-01T10:00:00Zjunk", "0000"}) {
        EXPECT_FALSE(DateTime::Parse(bad).has_value()) << bad;
    }
}

TEST(DateTime, CanonicalTextKeepsPrecision) {
    for (const char* text : {"2024", "2024-05", "2024-05-03", "2024-05-03T10:00:00+02:00",
                             "2024-05-03T10:00:00Z", "2024-05-03T10:00:00.250-03:00"}) {
        EXPECT_EQ(DateTime::Parse(text)->ToString(), text);
    }
}

TEST(CalendarDuration, ParsesAndPrints) {
    auto d = CalendarDuration::Parse("P1Y2M3W4DT5H6M7S");
    ASSERT_TRUE(d);
    EXPECT_EQ(d->years, 1);
    EXPECT_EQ(d->months, 2);
    EXPECT_EQ(d->weeks, 3);
    EXPECT_EQ(d->days, 4);
    EXPECT_EQ(d->hours, 5);
    EXPECT_EQ(d->minutes, 6);
    EXPECT_EQ(d->seconds, 7);
    EXPECT_EQ(CalendarDuration::Parse("PT48H")->ToString(), "PT48H");
    EXPECT_EQ(CalendarDuration::Parse("P0D")->ToString(), "P0D");
    for (const char* bad : {"", "P", "6M", "P6", "PT", "P1D2M", "P-1D", "P1.5D", "P6 months"}) {
        EXPECT_FALSE(CalendarDuration::Parse(bad).has_value()) << bad;
    }
}

TEST(CalendarDuration, MonthsAreCalendarMonths) {
    auto p1m = *CalendarDuration::Parse("P1M");
    EXPECT_EQ(AddCalendar(At("2026-01-31T10:00:00Z"), p1m, 1, 0), At("2026-02-28T10:00:00Z"));
    EXPECT_EQ(AddCalendar(At("2024-03-31T10:00:00Z"), p1m, -1, 0), At("2024-02-29T10:00:00Z"));
    auto p6m = *CalendarDuration::Parse("P6M");
    EXPECT_EQ(AddCalendar(At("2026-11-20T10:00:00Z"), p6m, -1, 0), At("2026-05-20T10:00:00Z"));
    auto p4w = *CalendarDuration::Parse("P4W");
    EXPECT_EQ(AddCalendar(At("2026-11-20T10:00:00Z"), p4w, 1, 0), At("2026-12-18T10:00:00Z"));
    auto p1y = *CalendarDuration::Parse("P1Y");
    EXPECT_EQ(AddCalendar(At("2024-02-29T00:00:00Z"), p1y, 1, 0), At("2025-02-28T00:00:00Z"));
}

TEST(CalendarDuration, CalendarStepsUseTheLocalDate) {
    // 31 Jan 23:30 at +02:00 is still January locally although it is 21:30 UTC.
    Instant local_end_of_january = At("2026-01-31T23:30:00+02:00");
    auto p1m = *CalendarDuration::Parse("P1M");
    EXPECT_EQ(AddCalendar(local_end_of_january, p1m, 1, 120), At("2026-02-28T23:30:00+02:00"));
    auto p48h = *CalendarDuration::Parse("PT48H");
    EXPECT_EQ(AddCalendar(local_end_of_january, p48h, 1, 120), At("2026-02-02T23:30:00+02:00"));
}

TEST(FormatInstant, WritesTheOffset) {
    EXPECT_EQ(FormatInstant(At("2026-11-20T09:00:00Z"), 60), "2026-11-20T10:00:00+01:00");
    EXPECT_EQ(FormatInstant(At("2026-11-20T09:00:00Z"), 0), "2026-11-20T09:00:00Z");
    EXPECT_EQ(FormatDate(At("2026-11-20T23:30:00Z"), 60), "2026-11-21");
}

}  // namespace
}  // namespace microcare::fhir
