extension Duration {
    /// Whole nanoseconds for the timers and clocks that count in `UInt64`: 0 for a negative
    /// duration and `UInt64.max` beyond it, so a configured value converts without trapping.
    public var saturatingNanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        guard !overflow else { return .max }
        let (total, carry) = whole.addingReportingOverflow(UInt64(attoseconds / 1_000_000_000))
        return carry ? .max : total
    }

    /// Whole milliseconds (rounded towards zero), clamped to `Int`'s range: how the configuration
    /// file writes durations (`…Ms` keys).
    public var wholeMilliseconds: Int {
        let (seconds, attoseconds) = components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1000)
        guard !overflow else { return seconds < 0 ? .min : .max }
        let (total, carry) = whole.addingReportingOverflow(attoseconds / 1_000_000_000_000_000)
        guard !carry else { return seconds < 0 ? .min : .max }
        return Int(clamping: total)
    }
}

extension UInt64 {
    /// Addition that stops at `UInt64.max` instead of trapping: instants plus configured or
    /// upstream-given durations.
    public func addingClamped(_ other: UInt64) -> UInt64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? .max : sum
    }

    /// Subtraction that stops at 0 instead of trapping: how long until an instant already past.
    public func subtractingClamped(_ other: UInt64) -> UInt64 { self > other ? self - other : 0 }
}
