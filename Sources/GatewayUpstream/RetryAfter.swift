import GatewayEventLoop
import GatewayHTTP

/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
public enum RetryAfter {
    /// RFC 9110 asks recipients to treat a delay too large to represent as 2^31 seconds.
    static let maximumDelaySeconds = 2_147_483_648

    /// Whole seconds to wait from now, or nil when the value is not a valid `Retry-After`.
    /// A date in the past gives 0.
    public static func seconds(from value: String, nowUnixSeconds: Int64) -> Int? {
        let trimmed = String(Substring(value).trimmingOptionalWhitespace())
        guard !trimmed.isEmpty else { return nil }
        if trimmed.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            var seconds = 0
            for digit in trimmed.utf8 {
                seconds = seconds * 10 + Int(digit - 0x30)
                if seconds >= maximumDelaySeconds { return maximumDelaySeconds }
            }
            return seconds
        }
        guard let date = httpDateUnixSeconds(trimmed, nowUnixSeconds: nowUnixSeconds) else { return nil }
        let delay = date - nowUnixSeconds
        if delay <= 0 { return 0 }
        return Int(min(delay, Int64(maximumDelaySeconds)))
    }

    /// Parses IMF-fixdate, the obsolete RFC 850 form and asctime (RFC 9110 §5.6.7).
    public static func httpDateUnixSeconds(_ value: String, nowUnixSeconds: Int64) -> Int64? {
        let tokens = value.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let first = tokens.first else { return nil }
        if first.hasSuffix(",") {
            let dayName = String(first.dropLast())
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            if tokens.count == 6, shortDayNames.contains(dayName), tokens[5] == "GMT",
                tokens[1].utf8.count == 2, let day = Int(tokens[1]),
                let month = monthNumber(tokens[2]),
                tokens[3].utf8.count == 4, let year = Int(tokens[3]),
                let time = clockTime(tokens[4])
            {
                return unixSeconds(year: year, month: month, day: day, time: time)
            }
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
            if tokens.count == 4, longDayNames.contains(dayName), tokens[3] == "GMT",
                let time = clockTime(tokens[2])
            {
                let parts = tokens[1].split(separator: "-", omittingEmptySubsequences: false)
                guard parts.count == 3, parts[0].utf8.count == 2, let day = Int(parts[0]),
                    let month = monthNumber(String(parts[1])),
                    parts[2].utf8.count == 2, let shortYear = Int(parts[2])
                else { return nil }
                return unixSeconds(
                    year: fullYear(twoDigits: shortYear, nowUnixSeconds: nowUnixSeconds),
                    month: month, day: day, time: time)
            }
            return nil
        }
        // asctime: Sun Nov  6 08:49:37 1994
        if tokens.count == 5, shortDayNames.contains(first), let month = monthNumber(tokens[1]),
            (1...2).contains(tokens[2].utf8.count), let day = Int(tokens[2]),
            let time = clockTime(tokens[3]),
            tokens[4].utf8.count == 4, let year = Int(tokens[4])
        {
            return unixSeconds(year: year, month: month, day: day, time: time)
        }
        return nil
    }

    private static let shortDayNames: Set<String> = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    private static let longDayNames: Set<String> = [
        "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
    ]
    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    private static func monthNumber(_ name: String) -> Int? {
        monthNames.firstIndex(of: name).map { $0 + 1 }
    }

    private static func clockTime(_ token: String) -> (hour: Int, minute: Int, second: Int)? {
        let parts = token.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ $0.utf8.count == 2 }),
            let hour = Int(parts[0]), let minute = Int(parts[1]), let second = Int(parts[2]),
            (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second)
        else { return nil }
        return (hour, minute, second)
    }

    /// RFC 9110: a two-digit year more than 50 years in the future means the most recent past year
    /// with those digits.
    private static func fullYear(twoDigits: Int, nowUnixSeconds: Int64) -> Int {
        let currentYear = civilYear(unixSeconds: nowUnixSeconds)
        var year = currentYear - currentYear % 100 + twoDigits
        if year > currentYear + 50 { year -= 100 }
        if year + 100 <= currentYear + 50 { year += 100 }
        return year
    }

    private static func unixSeconds(year: Int, month: Int, day: Int, time: (hour: Int, minute: Int, second: Int))
        -> Int64?
    {
        guard (1...12).contains(month), day >= 1, Int64(day) <= CivilCalendar.daysInMonth(year: Int64(year), month: Int64(month))
        else { return nil }
        let days = CivilCalendar.days(year: Int64(year), month: Int64(month), day: Int64(day))
        return days * 86_400 + Int64(time.hour * 3600 + time.minute * 60 + time.second)
    }

    private static func civilYear(unixSeconds: Int64) -> Int {
        Int(CivilCalendar.date(days: CivilCalendar.floorDivide(unixSeconds, 86_400)).year)
    }
}
