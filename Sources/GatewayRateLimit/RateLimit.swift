#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import GatewayEventLoop

/// A token bucket: a sustained rate and how many requests may arrive at once.
///
/// Internally the rate is an emission interval `T = round(1e9 / requestsPerSecond)` nanoseconds (so
/// rates that do not divide a second exactly are rounded to the nearest nanosecond per request) and the
/// burst is a tolerance of `burst × T` nanoseconds.
public struct RateLimitPolicy: Sendable, Hashable {
    public let requestsPerSecond: Double
    public let burst: Int
    /// `T`: nanoseconds one request of cost 1 occupies.
    public let emissionIntervalNanoseconds: UInt64
    /// `burst × T`: how far ahead of now the theoretical arrival time may run.
    public let burstToleranceNanoseconds: UInt64

    /// Allows 1 request per nanosecond at most and keeps `burst × T` within 2^62 ns (about 146 years).
    public init(requestsPerSecond: Double, burst: Int) throws(RateLimitPolicyError) {
        guard requestsPerSecond.isFinite, requestsPerSecond > 0 else {
            throw .requestsPerSecondNotPositive(requestsPerSecond)
        }
        guard burst > 0 else { throw .burstNotPositive(burst) }
        let interval = (1e9 / requestsPerSecond).rounded()
        guard interval >= 1, interval <= 0x1p62 else {
            throw .outOfRange(requestsPerSecond: requestsPerSecond, burst: burst)
        }
        let emissionInterval = UInt64(interval)
        let (tolerance, overflow) = emissionInterval.multipliedReportingOverflow(by: UInt64(burst))
        guard !overflow, tolerance <= 1 << 62 else {
            throw .outOfRange(requestsPerSecond: requestsPerSecond, burst: burst)
        }
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
        self.emissionIntervalNanoseconds = emissionInterval
        self.burstToleranceNanoseconds = tolerance
    }
}

public enum RateLimitPolicyError: Error, Hashable, CustomStringConvertible {
    case requestsPerSecondNotPositive(Double)
    case burstNotPositive(Int)
    case outOfRange(requestsPerSecond: Double, burst: Int)

    public var description: String {
        switch self {
        case .requestsPerSecondNotPositive(let rate):
            "requestsPerSecond must be a finite number greater than 0, got \(rate)"
        case .burstNotPositive(let burst):
            "burst must be greater than 0, got \(burst)"
        case .outOfRange(let rate, let burst):
            "requestsPerSecond \(rate) with burst \(burst) is out of range (at most 1e9 per second; a full bucket must refill within 146 years)"
        }
    }
}

/// The verdict on one request and the state the client is told about in `RateLimit-*` headers.
public struct RateLimitDecision: Sendable, Hashable {
    public var allowed: Bool
    /// The bucket's burst.
    public var limit: Int
    /// Whole requests (of cost 1) admissible right now, after this decision.
    public var remaining: Int
    /// Whole seconds, rounded up, until the bucket is full again (0 when it is full).
    public var resetSeconds: Int
    /// When denied: whole seconds, rounded up and at least 1, until this request would be admitted.
    public var retryAfterSeconds: Int?

    public init(allowed: Bool, limit: Int, remaining: Int, resetSeconds: Int, retryAfterSeconds: Int?) {
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.resetSeconds = resetSeconds
        self.retryAfterSeconds = retryAfterSeconds
    }

    /// The decision GCRA reached (see `MemoryRateLimitStore` for the steps), from the bucket's
    /// state relative to the instant it was judged: `base − now` and `after − now`. Every store
    /// (in memory, or in Redis with Redis's clock) turns its verdict into headers here.
    public init(policy: RateLimitPolicy, cost: Int, allowed: Bool, baseOffsetNanoseconds: UInt64, afterOffsetNanoseconds: UInt64) {
        let interval = policy.emissionIntervalNanoseconds
        let tolerance = policy.burstToleranceNanoseconds
        let backlog = afterOffsetNanoseconds
        let remaining = backlog >= tolerance ? 0 : Int((tolerance - backlog) / interval)
        var retryAfter: Int? = nil
        if !allowed {
            let wait: UInt64
            if cost <= policy.burst {
                let increment = UInt64(max(cost, 0)) * interval
                wait = baseOffsetNanoseconds.addingClamped(increment).subtractingClamped(tolerance)
            } else {
                wait = baseOffsetNanoseconds
            }
            retryAfter = max(1, Self.wholeSecondsRoundedUp(wait))
        }
        self.init(
            allowed: allowed, limit: policy.burst, remaining: remaining,
            resetSeconds: Self.wholeSecondsRoundedUp(backlog), retryAfterSeconds: retryAfter)
    }

    static func wholeSecondsRoundedUp(_ nanoseconds: UInt64) -> Int {
        Int(nanoseconds / 1_000_000_000 + (nanoseconds % 1_000_000_000 == 0 ? 0 : 1))
    }

    /// `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`, and `Retry-After` when denied.
    public var headerFields: [(String, String)] {
        var fields = [
            ("RateLimit-Limit", String(limit)),
            ("RateLimit-Remaining", String(remaining)),
            ("RateLimit-Reset", String(resetSeconds)),
        ]
        if let retryAfterSeconds { fields.append(("Retry-After", String(retryAfterSeconds))) }
        return fields
    }
}

/// Where buckets live. One `acquire` is atomic per key: concurrent callers never both take the last token.
///
/// `acquire` runs on its caller's executor: a store that decides in memory answers without
/// suspending (a request refused or admitted on the event loop stays there), one shared over the
/// network suspends for its round trip.
public protocol RateLimitStore: Sendable {
    nonisolated(nonsending) func acquire(key: String, policy: RateLimitPolicy, cost: Int) async -> RateLimitDecision
}

extension RateLimitStore {
    /// One request of cost 1.
    public nonisolated(nonsending) func acquire(key: String, policy: RateLimitPolicy) async -> RateLimitDecision {
        await acquire(key: key, policy: policy, cost: 1)
    }
}

