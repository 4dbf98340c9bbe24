/// How a `RedisClient` connects, how long it waits, and how it backs off.
public struct RedisClientConfiguration: Sendable {
    public static let defaultCommandTimeout: Duration = .milliseconds(5)

    public var endpoint: RedisEndpoint
    /// Each command's deadline unless the call gives its own; measured by the event loop's timers.
    public var commandTimeout: Duration
    /// TCP connect plus the connection's set-up (`AUTH`, `SELECT`, ...).
    public var connectTimeout: Duration
    /// How long past a command's deadline its connection may go without answering it before it is
    /// dropped as stalled. Long enough that a busy machine's latency is not taken for a dead
    /// Redis; short enough to bound how long a `waitPastDeadline` caller waits for a stuck one.
    public var stallTimeout: Duration
    public var reconnectBackoff: RedisBackoff
    /// Failures in a row (failed connects, lost or stalled connections) after which the breaker
    /// opens: commands are refused at once (`RedisError.unavailable`) until Redis answers again,
    /// instead of each waiting for its deadline. Any reply closes it.
    public var breakerThreshold: Int

    public init(
        endpoint: RedisEndpoint,
        commandTimeout: Duration = Self.defaultCommandTimeout,
        connectTimeout: Duration = .seconds(1),
        stallTimeout: Duration = .seconds(1),
        reconnectBackoff: RedisBackoff = RedisBackoff(),
        breakerThreshold: Int = 3
    ) {
        self.endpoint = endpoint
        self.commandTimeout = commandTimeout
        self.connectTimeout = connectTimeout
        self.stallTimeout = stallTimeout
        self.reconnectBackoff = reconnectBackoff
        self.breakerThreshold = max(1, breakerThreshold)
    }
}

/// Jittered exponential backoff between reconnect attempts.
///
/// The first attempt after a failure is immediate (one lost connection or one timed-out command is
/// usually a blip, and commands wait for that reconnect); from the second failure in a row on,
/// attempt n waits a random time in `[c/2, c]` with `c = min(maximum, base × 2^(n-2))` ("equal
/// jitter": never zero, so replicas that lost Redis together do not reconnect in lockstep).
public struct RedisBackoff: Sendable, Equatable {
    public var base: Duration
    public var maximum: Duration

    public init(base: Duration = .milliseconds(10), maximum: Duration = .seconds(2)) {
        self.base = base
        self.maximum = maximum
    }

    /// The wait before the next attempt after `failures` failures in a row; `random(upperBound)`
    /// returns a uniformly random value in `0...upperBound` (injectable for tests).
    public func delayNanoseconds(afterFailures failures: Int, random: (UInt64) -> UInt64) -> UInt64 {
        guard failures >= 2 else { return 0 }
        let baseNanoseconds = base.saturatingNanoseconds
        let maximumNanoseconds = max(maximum.saturatingNanoseconds, 1)
        let shift = UInt64(min(failures - 2, 40))
        let (scaled, overflow) = baseNanoseconds.multipliedReportingOverflow(by: 1 << shift)
        let ceiling = min(overflow ? .max : scaled, maximumNanoseconds)
        let half = ceiling / 2
        return half + min(random(ceiling - half), ceiling - half)
    }
}
