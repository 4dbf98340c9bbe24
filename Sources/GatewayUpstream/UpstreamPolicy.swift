import GatewayEventLoop

/// How one provider is called: limits, pacing, retries, breaker.
public struct UpstreamPolicy: Sendable, Equatable {
    /// Overall deadline of one call, retries and waiting for a pacing slot included.
    public var timeout: Duration { didSet { timeoutNanoseconds = timeout.saturatingNanoseconds } }
    public var connectTimeout: Duration { didSet { connectTimeoutNanoseconds = connectTimeout.saturatingNanoseconds } }
    /// Limit of one attempt, so a hung attempt leaves time to retry; nil = whatever of the deadline remains.
    public var perAttemptTimeout: Duration? { didSet { perAttemptTimeoutNanoseconds = perAttemptTimeout?.saturatingNanoseconds } }
    /// Calls in flight at once; further calls wait first come first served.
    public var maxConcurrency: Int
    /// Calls allowed to wait for a concurrency slot; more fail at once with `.overloaded`.
    public var maxWaiting: Int
    /// Outbound requests per second (attempts, retries included); nil or 0 = unpaced.
    public var requestsPerSecond: Double?
    /// Requests that may go back to back after a quiet period; 1 = evenly spaced.
    public var burst: Int
    /// Outbound requests in any rolling 60 s (attempts, retries included), as Kapso counts them per
    /// key; nil or 0 = no such budget.
    public var requestsPerMinute: Int?
    /// Extra attempts for idempotent calls after a connection error, timeout, 502, 503 or 504.
    public var maxRetries: Int
    /// Retries allowed per call made, over `retryBudgetWindow`.
    public var retryBudgetRatio: Double
    /// Retries always allowed per window, so an endpoint with little traffic can still retry.
    public var retryBudgetMinimumPerWindow: Int
    public var retryBudgetWindow: Duration { didSet { retryBudgetWindowNanoseconds = retryBudgetWindow.saturatingNanoseconds } }
    /// Full-jitter exponential backoff: retry n waits a random time in 0...min(max, base * 2^n).
    public var backoffBase: Duration { didSet { backoffBaseNanoseconds = backoffBase.saturatingNanoseconds } }
    public var backoffMax: Duration { didSet { backoffMaxNanoseconds = backoffMax.saturatingNanoseconds } }
    public var circuitBreaker: CircuitBreakerPolicy
    /// Longest pause honoured from a `Retry-After`, so one odd header cannot silence a provider for days.
    public var maxPause: Duration { didSet { maxPauseNanoseconds = maxPause.saturatingNanoseconds } }

    /// Outbound pacing when nothing else is configured (also `providers[].requestsPerSecond`'s default).
    public static let defaultRequestsPerSecond: Double = 10

    // The durations above converted once, for the endpoint's nanosecond clock (saturating, never
    // trapping on a configured value).
    public private(set) var timeoutNanoseconds: UInt64
    public private(set) var connectTimeoutNanoseconds: UInt64
    public private(set) var perAttemptTimeoutNanoseconds: UInt64?
    public private(set) var retryBudgetWindowNanoseconds: UInt64
    public private(set) var backoffBaseNanoseconds: UInt64
    public private(set) var backoffMaxNanoseconds: UInt64
    public private(set) var maxPauseNanoseconds: UInt64

    public init(
        timeout: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(3),
        perAttemptTimeout: Duration? = nil,
        maxConcurrency: Int = 16,
        maxWaiting: Int = 1024,
        requestsPerSecond: Double? = UpstreamPolicy.defaultRequestsPerSecond,
        burst: Int = 1,
        requestsPerMinute: Int? = nil,
        maxRetries: Int = 2,
        retryBudgetRatio: Double = 0.2,
        retryBudgetMinimumPerWindow: Int = 5,
        retryBudgetWindow: Duration = .seconds(10),
        backoffBase: Duration = .milliseconds(50),
        backoffMax: Duration = .seconds(2),
        circuitBreaker: CircuitBreakerPolicy = CircuitBreakerPolicy(),
        maxPause: Duration = .seconds(3600)
    ) {
        self.timeout = timeout
        self.timeoutNanoseconds = timeout.saturatingNanoseconds
        self.connectTimeout = connectTimeout
        self.connectTimeoutNanoseconds = connectTimeout.saturatingNanoseconds
        self.perAttemptTimeout = perAttemptTimeout
        self.perAttemptTimeoutNanoseconds = perAttemptTimeout?.saturatingNanoseconds
        self.maxConcurrency = maxConcurrency
        self.maxWaiting = maxWaiting
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
        self.requestsPerMinute = requestsPerMinute
        self.maxRetries = maxRetries
        self.retryBudgetRatio = retryBudgetRatio
        self.retryBudgetMinimumPerWindow = retryBudgetMinimumPerWindow
        self.retryBudgetWindow = retryBudgetWindow
        self.retryBudgetWindowNanoseconds = retryBudgetWindow.saturatingNanoseconds
        self.backoffBase = backoffBase
        self.backoffBaseNanoseconds = backoffBase.saturatingNanoseconds
        self.backoffMax = backoffMax
        self.backoffMaxNanoseconds = backoffMax.saturatingNanoseconds
        self.circuitBreaker = circuitBreaker
        self.maxPause = maxPause
        self.maxPauseNanoseconds = maxPause.saturatingNanoseconds
    }
}

public struct CircuitBreakerPolicy: Sendable, Equatable {
    /// Consecutive failed attempts (connection, timeout, malformed, 5xx; never 4xx) that open the circuit.
    public var failureThreshold: Int
    /// How long an open circuit refuses calls before letting one probe through.
    public var openDuration: Duration { didSet { openDurationNanoseconds = openDuration.saturatingNanoseconds } }
    /// `openDuration` converted once.
    public private(set) var openDurationNanoseconds: UInt64

    public init(failureThreshold: Int = 5, openDuration: Duration = .seconds(10)) {
        self.failureThreshold = failureThreshold
        self.openDuration = openDuration
        self.openDurationNanoseconds = openDuration.saturatingNanoseconds
    }
}

/// Per call: which credential, whether the call may be repeated, the correlation ids, and on whose
/// behalf and by when.
public struct UpstreamCallOptions: Sendable {
    /// Identifies the credential (a hash the caller computed), never the credential itself.
    /// Retry-After pauses apply per (endpoint, credentialKey).
    public var credentialKey: String
    /// True for reads (GET, and POSTs that only read, such as Kaizen's list and get).
    public var isIdempotent: Bool
    /// Sent upstream as `X-Request-Id`.
    public var requestId: String
    /// Sent upstream as `traceparent`.
    public var traceparent: String
    /// The gateway client the call is made for: the concurrency limit is shared fairly between clients.
    public var clientID: String
    /// The end of the gateway request the call serves (the endpoint clock's nanoseconds): waiting for
    /// a concurrency slot, pacing, attempts and retries all end by then. nil: only the policy's timeout.
    public var deadlineNanoseconds: UInt64?

    public init(
        credentialKey: String, isIdempotent: Bool, requestId: String, traceparent: String, clientID: String = "",
        deadlineNanoseconds: UInt64? = nil
    ) {
        self.credentialKey = credentialKey
        self.isIdempotent = isIdempotent
        self.requestId = requestId
        self.traceparent = traceparent
        self.clientID = clientID
        self.deadlineNanoseconds = deadlineNanoseconds
    }

}

/// How a call to an endpoint ended; the label set for metrics.
public enum UpstreamCallOutcome: String, Sendable, CaseIterable, Hashable {
    case success
    case httpError
    case timeout
    case connectionError
    case malformedResponse
    case bodyTooLarge
    case cancelled
    case circuitOpen
    case paused
    case minuteBudgetSpent
    case overloaded
    case invalidRequest
    case unavailable

    init(_ error: UpstreamError) {
        switch error {
        case .timeout: self = .timeout
        case .connection: self = .connectionError
        case .httpStatus: self = .httpError
        case .malformedResponse: self = .malformedResponse
        case .circuitOpen: self = .circuitOpen
        case .paused: self = .paused
        case .minuteBudgetSpent: self = .minuteBudgetSpent
        case .overloaded: self = .overloaded
        case .cancelled: self = .cancelled
        case .bodyTooLarge: self = .bodyTooLarge
        case .invalidRequest: self = .invalidRequest
        case .shutdown, .clientUnavailable: self = .unavailable
        }
    }
}

public struct UpstreamEndpointStatistics: Sendable, Equatable {
    /// Finished calls by how they ended (every outcome present, zero included).
    public var callsByOutcome: [UpstreamCallOutcome: Int]
    /// Requests handed to the transport, retries included.
    public var attempts: Int
    public var retries: Int
    public var retriesDeniedByBudget: Int
    public var pausesStarted: Int
    /// Credentials currently paused by a Retry-After.
    public var activePauses: Int
    public var circuitState: CircuitState
    public var circuitOpenings: Int
    public var inFlight: Int
    public var waiting: Int

    public init(
        callsByOutcome: [UpstreamCallOutcome: Int] = Dictionary(
            uniqueKeysWithValues: UpstreamCallOutcome.allCases.map { ($0, 0) }),
        attempts: Int = 0,
        retries: Int = 0,
        retriesDeniedByBudget: Int = 0,
        pausesStarted: Int = 0,
        activePauses: Int = 0,
        circuitState: CircuitState = .closed,
        circuitOpenings: Int = 0,
        inFlight: Int = 0,
        waiting: Int = 0
    ) {
        self.callsByOutcome = callsByOutcome
        self.attempts = attempts
        self.retries = retries
        self.retriesDeniedByBudget = retriesDeniedByBudget
        self.pausesStarted = pausesStarted
        self.activePauses = activePauses
        self.circuitState = circuitState
        self.circuitOpenings = circuitOpenings
        self.inFlight = inFlight
        self.waiting = waiting
    }

    public var calls: Int { callsByOutcome.values.reduce(0, +) }
}
