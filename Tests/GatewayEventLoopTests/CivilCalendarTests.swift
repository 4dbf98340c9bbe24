import GatewayEventLoop
import GatewayTestSupport
import Glibc
import Testing

/// The one calendar every timestamp goes through, against the C library's.
@Suite struct CivilCalendarTests {
    /// The epoch, leap days of a 400-year century (2000) and of an ordinary leap year (2024), the
    /// day after a non-leap century (2100-03-01), the last second of a year, instants before the
    /// epoch, and a spread of instants from 1677 to 2262.
    static var instants: [Int64] {
        var instants: [Int64] = [0, -1, 951_782_400, 951_868_799, 1_709_164_800, 4_107_542_400, 1_798_761_599, -9_223_372_036]
        var generator = SplitMix64(seed: 0x7153)
        for _ in 0..<20_000 {
            instants.append(Int64(truncatingIfNeeded: generator.next() % 18_446_744_072) - 9_223_372_036)
        }
        return instants
    }

    @Test func datesMatchGmtime() {
        for seconds in Self.instants {
            var time = time_t(seconds)
            var parts = tm()
            gmtime_r(&time, &parts)
            let date = CivilCalendar.date(days: CivilCalendar.floorDivide(seconds, 86_400))
            let expected = (Int64(parts.tm_year) + 1900, Int64(parts.tm_mon) + 1, Int64(parts.tm_mday))
            #expect(date == expected, "at \(seconds)")
            if date != expected { break }
        }
    }

    @Test func daysAndDatesAreInverse() {
        for seconds in Self.instants {
            let days = CivilCalendar.floorDivide(seconds, 86_400)
            let date = CivilCalendar.date(days: days)
            #expect(CivilCalendar.days(year: date.year, month: date.month, day: date.day) == days, "at \(seconds)")
            #expect((1...CivilCalendar.daysInMonth(year: date.year, month: date.month)).contains(date.day))
        }
    }

    @Test func leapYearsFollowTheGregorianRule() {
        #expect(CivilCalendar.daysInMonth(year: 2000, month: 2) == 29)
        #expect(CivilCalendar.daysInMonth(year: 2024, month: 2) == 29)
        #expect(CivilCalendar.daysInMonth(year: 2100, month: 2) == 28)
        #expect(CivilCalendar.daysInMonth(year: 2026, month: 2) == 28)
        #expect(CivilCalendar.daysInMonth(year: 2026, month: 4) == 30)
        #expect(CivilCalendar.daysInMonth(year: 2026, month: 12) == 31)
    }

    @Test func floorDivisionRoundsTowardNegativeInfinity() {
        #expect(CivilCalendar.floorDivide(-1, 86_400) == -1)
        #expect(CivilCalendar.floorDivide(-86_400, 86_400) == -1)
        #expect(CivilCalendar.floorDivide(86_399, 86_400) == 0)
        #expect(CivilCalendar.floorDivide(7, -2) == -4)
    }
}
