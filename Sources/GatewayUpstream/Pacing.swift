/// Outbound spacing in the manner of GCRA: each request reserves the next slot and waits for it
/// instead of being refused. `burst` requests may go back to back after a quiet period.
/// Not thread-safe: the endpoint keeps it under its lock.
struct OutboundPacer {
    /// Nanoseconds between slots; 0 disables pacing.
    let interval: UInt64
    private let tolerance: UInt64
    /// GCRA's theoretical arrival time of the next request.
    private var theoreticalArrival: UInt64 = 0

    init(requestsPerSecond: Double?, burst: Int) {
        if let requestsPerSecond, requestsPerSecond > 0, requestsPerSecond.isFinite {
            interval = UInt64(max(1, (1_000_000_000 / requestsPerSecond).rounded()))
        } else {
            interval = 0
        }
        let (product, overflow) = interval.multipliedReportingOverflow(by: UInt64(max(0, burst - 1)))
        tolerance = overflow ? .max : product
    }

    /// The time at which the caller may send, with the slot reserved; nil (nothing reserved) when
    /// that time would be later than `deadline`.
    mutating func reserve(now: UInt64, deadline: UInt64) -> UInt64? {
        guard interval > 0 else { return now }
        let arrival = max(theoreticalArrival, now)
        let slot = max(now, arrival.subtractingClamped(tolerance))
        guard slot <= deadline else { return nil }
        theoreticalArrival = arrival.addingClamped(interval)
        return slot
    }
}

/// Allows retries while they stay below `ratio` of the calls made over the last window (plus a
/// small floor so a quiet endpoint can still retry), so a failing upstream sees at most about
/// (1 + ratio) times the original traffic. Not thread-safe: the endpoint keeps it under its lock.
struct RetryBudget {
    let ratio: Double
    let minimumRetriesPerWindow: Int
    let window: UInt64

    private var windowStart: UInt64 = 0
    private var calls = 0
    private var retries = 0
    private var previousCalls = 0
    private var previousRetries = 0

    init(ratio: Double, minimumRetriesPerWindow: Int, windowNanoseconds: UInt64) {
        self.ratio = max(0, ratio)
        self.minimumRetriesPerWindow = max(0, minimumRetriesPerWindow)
        self.window = max(1, windowNanoseconds)
    }

    mutating func recordCall(now: UInt64) {
        roll(now: now)
        calls += 1
    }

    /// Spends one retry if the budget allows it.
    mutating func tryRetry(now: UInt64) -> Bool {
        roll(now: now)
        // Sliding-window estimate: the previous window counts in proportion to how much of it
        // still lies within one window of now.
        let elapsed = Double(now.subtractingClamped(windowStart)) / Double(window)
        let previousWeight = max(0, 1 - elapsed)
        let recentCalls = Double(calls) + Double(previousCalls) * previousWeight
        let recentRetries = Double(retries) + Double(previousRetries) * previousWeight
        guard recentRetries + 1 <= Double(minimumRetriesPerWindow) + ratio * recentCalls else { return false }
        retries += 1
        return true
    }

    private mutating func roll(now: UInt64) {
        guard now >= windowStart.addingClamped(window) else { return }
        if now >= windowStart.addingClamped(window).addingClamped(window) {
            previousCalls = 0
            previousRetries = 0
            windowStart = now - now % window
        } else {
            previousCalls = calls
            previousRetries = retries
            windowStart = windowStart.addingClamped(window)
        }
        calls = 0
        retries = 0
    }
}
