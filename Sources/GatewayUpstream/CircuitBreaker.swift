/// Consecutive-failure circuit breaker. Not thread-safe: the endpoint keeps it under its lock.
///
/// closed --(failureThreshold consecutive failures)--> open --(openDuration)--> half-open:
/// one probe call goes through; its success closes the circuit, its failure opens it again.
struct CircuitBreaker {
    enum Admission: Equatable {
        case admitted
        /// This call is the half-open probe; its outcome must be reported with `isProbe: true`.
        case probe
        case rejected(retryAtNanoseconds: UInt64)
    }

    enum Outcome {
        case success
        case failure
        /// Says nothing about the upstream's health (cancelled, refused locally).
        case neutral
    }

    let failureThreshold: Int
    let openDurationNanoseconds: UInt64

    private(set) var state: CircuitState = .closed
    private(set) var consecutiveFailures = 0
    private(set) var timesOpened = 0
    private var probeInFlight = false

    init(failureThreshold: Int, openDurationNanoseconds: UInt64) {
        self.failureThreshold = max(1, failureThreshold)
        self.openDurationNanoseconds = openDurationNanoseconds
    }

    /// Whether a call would be refused now, without claiming the probe.
    func rejection(now: UInt64) -> UInt64? {
        switch state {
        case .closed: nil
        case .open(let until): now >= until ? nil : until
        case .halfOpen: probeInFlight ? now : nil
        }
    }

    mutating func admit(now: UInt64) -> Admission {
        switch state {
        case .closed:
            return .admitted
        case .open(let until):
            guard now >= until else { return .rejected(retryAtNanoseconds: until) }
            state = .halfOpen
            probeInFlight = true
            return .probe
        case .halfOpen:
            // The probe's outcome is not known yet; callers may try again shortly.
            guard !probeInFlight else { return .rejected(retryAtNanoseconds: now) }
            probeInFlight = true
            return .probe
        }
    }

    /// Returns the state change this outcome caused, if any, for logging.
    mutating func record(_ outcome: Outcome, isProbe: Bool, now: UInt64) -> CircuitState? {
        let before = state
        if isProbe { probeInFlight = false }
        switch outcome {
        case .success:
            consecutiveFailures = 0
            if isProbe || state == .closed { state = .closed }
        case .failure:
            consecutiveFailures += 1
            switch state {
            case .closed where consecutiveFailures >= failureThreshold, .halfOpen where isProbe:
                state = .open(untilNanoseconds: now.addingClamped(openDurationNanoseconds))
                timesOpened += 1
            default:
                break
            }
        case .neutral:
            break
        }
        return state == before ? nil : state
    }
}

public enum CircuitState: Sendable, Equatable, CustomStringConvertible {
    case closed
    case open(untilNanoseconds: UInt64)
    case halfOpen

    public var description: String {
        switch self {
        case .closed: "closed"
        case .open: "open"
        case .halfOpen: "half-open"
        }
    }
}
