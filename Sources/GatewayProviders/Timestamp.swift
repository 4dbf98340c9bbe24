import GatewayEventLoop

/// An instant with nanosecond precision, parsed from and rendered as RFC 3339.
///
/// Providers write timestamps with differing precision and offsets (`2026-11-20T10:00:00Z`,
/// `2026-11-20T11:00:00.123+01:00`); ordering and cursors need one exact, comparable value.
public struct Timestamp: Sendable, Hashable, Comparable, CustomStringConvertible {
    public let nanosecondsSinceEpoch: Int64

    public init(nanosecondsSinceEpoch: Int64) { self.nanosecondsSinceEpoch = nanosecondsSinceEpoch }

    /// Whole seconds since the epoch; nil outside the representable instants (1677–2262).
    public init?(unixSeconds: Int64) {
        let (nanoseconds, overflow) = unixSeconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return nil }
        self.nanosecondsSinceEpoch = nanoseconds
    }

    public static func < (lhs: Timestamp, rhs: Timestamp) -> Bool { lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch }

    /// Parses RFC 3339 `date-time` (`T` or `t` or space separator, `Z`/`z` or `±hh:mm`, optional
    /// fraction up to nanoseconds). Returns nil for anything else, including impossible dates.
    public init?(rfc3339 text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count >= 20 else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard index < bytes.count, (48...57).contains(bytes[index]) else { return nil }
                value = value * 10 + Int(bytes[index] - 48)
            }
            return value
        }
        guard let year = number(0..<4), bytes[4] == UInt8(ascii: "-"),
              let month = number(5..<7), bytes[7] == UInt8(ascii: "-"),
              let day = number(8..<10),
              bytes[10] == UInt8(ascii: "T") || bytes[10] == UInt8(ascii: "t") || bytes[10] == UInt8(ascii: " "),
              let hour = number(11..<13), bytes[13] == UInt8(ascii: ":"),
              let minute = number(14..<16), bytes[16] == UInt8(ascii: ":"),
              let second = number(17..<19)
        else { return nil }
        guard (1...12).contains(month), day >= 1, Int64(day) <= CivilCalendar.daysInMonth(year: Int64(year), month: Int64(month)),
              hour <= 23, minute <= 59, second <= 60
        else { return nil }
        var index = 19
        var nanoseconds = 0
        if bytes[index] == UInt8(ascii: ".") {
            index += 1
            var digits = 0
            while index < bytes.count, (48...57).contains(bytes[index]) {
                if digits < 9 { nanoseconds = nanoseconds * 10 + Int(bytes[index] - 48) }
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if digits < 9 { for _ in digits..<9 { nanoseconds *= 10 } }
        }
        guard index < bytes.count else { return nil }
        var offsetSeconds = 0
        switch bytes[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            let sign = bytes[index] == UInt8(ascii: "-") ? -1 : 1
            guard index + 6 == bytes.count, let offsetHour = number(index + 1..<index + 3),
                  bytes[index + 3] == UInt8(ascii: ":"), let offsetMinute = number(index + 4..<index + 6),
                  offsetHour <= 23, offsetMinute <= 59
            else { return nil }
            offsetSeconds = sign * (offsetHour * 3600 + offsetMinute * 60)
            index += 6
        default:
            return nil
        }
        guard index == bytes.count else { return nil }
        let days = CivilCalendar.days(year: Int64(year), month: Int64(month), day: Int64(day))
        let seconds = days * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offsetSeconds)
        // Before 1970 with a fraction, scale the next second and step back, so the last representable
        // second (1677-09-21T00:12:43.145224192Z) does not overflow on the way.
        let borrow = seconds < 0 && nanoseconds > 0
        let (scaled, overflow) = (borrow ? seconds + 1 : seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let (total, sumOverflow) = scaled.addingReportingOverflow(borrow ? Int64(nanoseconds) - 1_000_000_000 : Int64(nanoseconds))
        guard !overflow, !sumOverflow else { return nil }
        nanosecondsSinceEpoch = total
    }

    /// `2026-11-20T10:00:00Z`, with a fraction only when there is one (trailing zeros trimmed).
    public var rfc3339: String {
        // Floor division without `n - 999_999_999`, which overflows near Int64.min.
        var seconds = nanosecondsSinceEpoch / 1_000_000_000
        var remainder = nanosecondsSinceEpoch % 1_000_000_000
        if remainder < 0 {
            seconds -= 1
            remainder += 1_000_000_000
        }
        let fraction = Int(remainder)
        let days = CivilCalendar.floorDivide(seconds, 86_400)
        let secondOfDay = Int(seconds - days * 86_400)
        let (year, month, day) = CivilCalendar.date(days: days)
        func pad(_ value: Int, _ width: Int) -> String {
            let text = String(value)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        var text = "\(pad(Int(year), 4))-\(pad(Int(month), 2))-\(pad(Int(day), 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2))"
        if fraction > 0 {
            var digits = pad(fraction, 9)
            while digits.hasSuffix("0") { digits.removeLast() }
            text += "." + digits
        }
        return text + "Z"
    }

    public var description: String { rfc3339 }

    public var millisecondsSinceEpoch: Int64 { nanosecondsSinceEpoch / 1_000_000 }
}
