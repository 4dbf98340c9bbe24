// RFC 3339 formatting and parsing on plain integers (Unix epoch), so timestamps are exact,
// locale-free and identical on every platform. Each provider renders its own style, because
// the real backends differ and the gateway has to read all of them.

import GatewayEventLoop

/// How a provider writes instants.
enum TimestampStyle: Sendable {
    /// `2025-01-02T03:04:05.678Z`, like JavaScript's `Date.toISOString()` (Kaizen).
    case milliseconds
    /// `2025-01-02T03:04:05Z`, whole seconds (Kapso, as in its documented example).
    case seconds
    /// `2025-01-02T03:04:05.67Z` with trailing zeros and an empty fraction dropped, like Go's
    /// `time.RFC3339Nano` (B3OS).
    case trimmedFraction
}

enum Timestamps {
    static let millisecondsPerDay: Int64 = 86_400_000

    static func format(milliseconds: Int64, style: TimestampStyle) -> String {
        let days = CivilCalendar.floorDivide(milliseconds, millisecondsPerDay)
        let millisecondOfDay = milliseconds - days * millisecondsPerDay
        let (year, month, day) = CivilCalendar.date(days: days)
        let hour = millisecondOfDay / 3_600_000
        let minute = millisecondOfDay / 60_000 % 60
        let second = millisecondOfDay / 1000 % 60
        let fraction = millisecondOfDay % 1000
        var text = pad(year, 4) + "-" + pad(month, 2) + "-" + pad(day, 2) + "T"
            + pad(hour, 2) + ":" + pad(minute, 2) + ":" + pad(second, 2)
        switch style {
        case .milliseconds:
            text += "." + pad(fraction, 3)
        case .seconds:
            break
        case .trimmedFraction:
            if fraction != 0 {
                var digits = pad(fraction, 3)
                while digits.hasSuffix("0") { digits.removeLast() }
                text += "." + digits
            }
        }
        return text + "Z"
    }

    /// Nanoseconds since the epoch for an RFC 3339 `date-time`, or nil when `text` is not one.
    /// With `requireUTC` only the `Z` designator is accepted (what Kaizen documents: "UTC").
    static func parseNanoseconds(_ text: String, requireUTC: Bool = false) -> Int64? {
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ digits: Int) -> Int64? {
            guard index + digits <= bytes.count else { return nil }
            var value: Int64 = 0
            for offset in 0..<digits {
                let byte = bytes[index + offset]
                guard byte >= 0x30, byte <= 0x39 else { return nil }
                value = value * 10 + Int64(byte - 0x30)
            }
            index += digits
            return value
        }
        func expect(_ characters: String) -> Bool {
            guard index < bytes.count, characters.utf8.contains(bytes[index]) else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
              expect("Tt"), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
              let second = number(2)
        else { return nil }
        guard (1...12).contains(month), day >= 1, day <= CivilCalendar.daysInMonth(year: year, month: month),
              hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var nanoseconds: Int64 = 0
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, bytes[index] >= 0x30, bytes[index] <= 0x39 {
                if digits < 9 { nanoseconds = nanoseconds * 10 + Int64(bytes[index] - 0x30) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            for _ in min(digits, 9)..<9 { nanoseconds *= 10 }
        }
        var offsetSeconds: Int64 = 0
        if expect("Zz") {
            // UTC
        } else {
            guard !requireUTC, index < bytes.count else { return nil }
            let sign: Int64 = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            guard expect("+-"), let offsetHour = number(2), expect(":"), let offsetMinute = number(2),
                  offsetHour <= 23, offsetMinute <= 59
            else { return nil }
            offsetSeconds = sign * (offsetHour * 3600 + offsetMinute * 60)
        }
        guard index == bytes.count else { return nil }
        let days = CivilCalendar.days(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offsetSeconds
        // Keeps the multiplication below inside Int64 (years up to 2262).
        guard seconds < 9_223_372_036 && seconds > -9_223_372_036 else { return nil }
        return seconds * 1_000_000_000 + nanoseconds
    }

    private static func pad(_ value: Int64, _ width: Int) -> String {
        let digits = String(value)
        return digits.count >= width ? digits : String(repeating: "0", count: width - digits.count) + digits
    }
}
