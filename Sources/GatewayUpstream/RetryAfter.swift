/// `Retry-After` (RFC 9110 §10.2.3): delay-seconds or an HTTP-date.
public enum RetryAfter {
    /// RFC 9110 asks recipients to treat a delay too large to represent as 2^31 seconds.
    static let maximumDelaySeconds = 2_147_483_648

    /// Whole seconds to wait from now, or nil when the value is not a valid `Retry-After`.
    /// A date in the past gives 0.
    public static func seconds(from value: String, nowUnixSeconds: Int64) -> Int? {
        let trimmed = value.trimmingSpacesAndTabs()
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
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year: year, month: month) else { return nil }
        let days = daysFromCivil(year: year, month: month, day: day)
        return Int64(days) * 86_400 + Int64(time.hour * 3600 + time.minute * 60 + time.second)
    }

    private static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let adjustedYear = month <= 2 ? year - 1 : year
        let era = (adjustedYear >= 0 ? adjustedYear : adjustedYear - 399) / 400
        let yearOfEra = adjustedYear - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    private static func civilYear(unixSeconds: Int64) -> Int {
        let days = Int(unixSeconds / 86_400) + 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        return yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
    }
}

extension String {
    func trimmingSpacesAndTabs() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
