import DequeModule

/// Outbound spacing in the manner of GCRA: each request reserves the next slot and waits for it
/// instead of being refused. `burst` requests may go back to back after a quiet period. With a
/// per-minute budget, a slot also never puts more than that many requests into any rolling 60 s,
/// the way Kapso counts its limit.
/// Not thread-safe: the endpoint keeps it under its lock.
struct OutboundPacer {
    static let minute: UInt64 = 60_000_000_000

    /// Nanoseconds between slots; 0 disables pacing.
    private(set) var interval: UInt64
    private var tolerance: UInt64
    /// GCRA's theoretical arrival time of the next request.
    private var theoreticalArrival: UInt64 = 0
    /// Requests allowed in any rolling minute; 0 = no such budget.
    private(set) var perMinute: Int
    /// The slots of the last `perMinute` requests, oldest first (all of them, when fewer).
    private var recentSlots = Deque<UInt64>()

    enum Reservation: Equatable {
        /// The caller may send at this time; the slot is taken.
        case slot(UInt64)
        /// No slot before the deadline; nothing was taken. `earliest` is when one would be, and
        /// `minuteBudget` says whether the per-minute budget is what pushed it there.
        case beyondDeadline(earliest: UInt64, minuteBudget: Bool)
    }

    init(requestsPerSecond: Double?, burst: Int, requestsPerMinute: Int? = nil) {
        if let requestsPerSecond, requestsPerSecond > 0, requestsPerSecond.isFinite {
            interval = UInt64(max(1, (1_000_000_000 / requestsPerSecond).rounded()))
        } else {
            interval = 0
        }
        let (product, overflow) = interval.multipliedReportingOverflow(by: UInt64(max(0, burst - 1)))
        tolerance = overflow ? .max : product
        perMinute = max(0, requestsPerMinute ?? 0)
    }

    /// The budgets as a shared store applies them.
    var sharedPacing: SharedPacing {
        SharedPacing(intervalNanoseconds: interval, toleranceNanoseconds: tolerance, perMinute: perMinute)
    }

    /// One of `replicas` replicas' part of these budgets, for pacing alone while the shared ones
    /// cannot be reached.
    func share(amongReplicas replicas: Int) -> OutboundPacer {
        var share = self
        guard replicas > 1 else { return share }
        let count = UInt64(replicas)
        share.interval = interval.multipliedReportingOverflow(by: count).overflow ? .max : interval * count
        share.tolerance = tolerance / count
        share.perMinute = perMinute > 0 ? max(1, perMinute / replicas) : 0
        return share
    }

    /// Calls the per-minute budget still allows in the rolling minute ending at `now`; nil when
    /// there is no such budget. Background work (index syncs) asks before spending what clients
    /// may need.
    func callsLeftThisMinute(now: UInt64) -> Int? {
        guard perMinute > 0 else { return nil }
        let windowStart = now.subtractingClamped(Self.minute)
        let inWindow = recentSlots.reduce(0) { $0 + ($1 > windowStart ? 1 : 0) }
        return max(0, perMinute - inWindow)
    }

    /// Reserves the earliest slot at or after `now` that both budgets allow, unless it would be
    /// later than `deadline`.
    mutating func reserve(now: UInt64, deadline: UInt64) -> Reservation {
        var slot = now
        var arrival = now
        if interval > 0 {
            arrival = max(theoreticalArrival, now)
            slot = max(now, arrival.subtractingClamped(tolerance))
        }
        var minuteBudget = false
        // Slots are handed out in order even when callers read the clock out of order, so the
        // window below always holds the latest `perMinute` of them.
        if perMinute > 0, let latest = recentSlots.last { slot = max(slot, latest) }
        if perMinute > 0, recentSlots.count >= perMinute, let oldest = recentSlots.first {
            // The oldest of the last `perMinute` slots must have left the window.
            let windowOpens = oldest.addingClamped(Self.minute)
            if windowOpens > slot {
                slot = windowOpens
                minuteBudget = true
            }
        }
        guard slot <= deadline else { return .beyondDeadline(earliest: slot, minuteBudget: minuteBudget) }
        if interval > 0 { theoreticalArrival = max(arrival, slot).addingClamped(interval) }
        if perMinute > 0 {
            recentSlots.append(slot)
            if recentSlots.count > perMinute { recentSlots.removeFirst() }
        }
        return .slot(slot)
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
