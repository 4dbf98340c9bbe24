public import Logging
import Synchronization

/// One configured provider as seen from the gateway: its transport wrapped in the provider's
/// policy (concurrency limit, pacing, retries with a budget, Retry-After pauses per credential,
/// circuit breaker).
///
/// A call returns the response only for 2xx; any other status is thrown as `.httpStatus`.
/// The first 429/503 carrying a `Retry-After` is thrown as `.httpStatus(..., retryAfterSeconds:)`;
/// calls with the same credential after it fail at once with `.paused(untilNanoseconds:)`.
public final class UpstreamEndpoint: Sendable {
    public let name: String
    public let policy: UpstreamPolicy
    private let transport: any UpstreamTransport
    private let clock: any UpstreamClock
    private let jitter: @Sendable (UInt64) -> UInt64
    private let logger: Logger
    private let limiter: ConcurrencyLimiter
    private let sharedBudget: (any SharedCallBudget)?
    private let state: Mutex<State>

    private struct State {
        var breaker: CircuitBreaker
        var pacer: OutboundPacer
        var budget: RetryBudget
        var pausedUntil: [String: UInt64] = [:]
        var statistics = UpstreamEndpointStatistics()
        /// With a shared budget: this replica's part of the pacer, used while the shared one
        /// cannot be reached, and the replica count it was cut for.
        var fallbackPacer: (pacer: OutboundPacer, replicas: Int)?
        /// With a shared budget: what the shared per-minute budget had left at the last slot.
        var sharedCallsLeft: (calls: Int, at: UInt64)?

        /// What a call with this credential gets without reaching the upstream: a Retry-After
        /// pause, or an open circuit; nil when it would be attempted.
        mutating func refusal(for credentialKey: String, now: UInt64) -> UpstreamError? {
            if let until = activePause(for: credentialKey, now: now) { return .paused(untilNanoseconds: until) }
            if let retryAt = breaker.rejection(now: now) { return .circuitOpen(retryAtNanoseconds: retryAt) }
            return nil
        }

        mutating func activePause(for credentialKey: String, now: UInt64) -> UInt64? {
            guard let until = pausedUntil[credentialKey] else { return nil }
            if until > now { return until }
            pausedUntil[credentialKey] = nil
            return nil
        }
    }

    /// - Parameters:
    ///   - jitter: returns a uniformly random value in `0...upperBound`; injectable for tests.
    ///   - sharedBudget: budgets and pauses kept with other replicas; nil paces this process alone.
    public init(
        name: String,
        policy: UpstreamPolicy,
        transport: any UpstreamTransport,
        clock: any UpstreamClock = SystemUpstreamClock(),
        jitter: @escaping @Sendable (_ upperBound: UInt64) -> UInt64 = { UInt64.random(in: 0...$0) },
        logger: Logger = Logger(label: "gateway.upstream"),
        sharedBudget: (any SharedCallBudget)? = nil
    ) {
        self.name = name
        self.sharedBudget = sharedBudget
        self.policy = policy
        self.transport = transport
        self.clock = clock
        self.jitter = jitter
        var logger = logger
        logger[metadataKey: "provider"] = "\(name)"
        self.logger = logger
        limiter = ConcurrencyLimiter(limit: policy.maxConcurrency, maxWaiting: policy.maxWaiting)
        state = Mutex(
            State(
                breaker: CircuitBreaker(
                    failureThreshold: policy.circuitBreaker.failureThreshold,
                    openDurationNanoseconds: policy.circuitBreaker.openDurationNanoseconds),
                pacer: OutboundPacer(
                    requestsPerSecond: policy.requestsPerSecond, burst: policy.burst, requestsPerMinute: policy.requestsPerMinute),
                budget: RetryBudget(
                    ratio: policy.retryBudgetRatio,
                    minimumRetriesPerWindow: policy.retryBudgetMinimumPerWindow,
                    windowNanoseconds: policy.retryBudgetWindowNanoseconds)))
    }

    /// Sends `request` under this endpoint's policy, adding `X-Request-Id` and `traceparent` from
    /// `options`. The request's `timeoutNanoseconds`, when set, can only shorten the policy's, and
    /// `options.deadlineNanoseconds` ends the call (its wait for a concurrency slot included) earlier still.
    public func execute(_ request: UpstreamRequest, options: UpstreamCallOptions) async throws(UpstreamError)
        -> UpstreamResponse
    {
        let transport = self.transport
        return try await call(request, options: options, failure: { AttemptFailure() }) { outbound throws(UpstreamError) in
            try await transport.execute(outbound)
        }
    }

    /// Sends `request` under the same policy as `execute` (pacing, concurrency slot, pauses,
    /// breaker, deadline), but hands a 2xx body to `consume` chunk by chunk as it arrives instead
    /// of accumulating it; `consume` runs on a task of its own, one call at a time, and the
    /// transfer waits (paused, within `bufferLimitBytes`) while it works. The body's limit is
    /// `request.maxResponseBodyBytes` (`.bodyTooLarge` past it). A call is retried only while no
    /// body byte has been handed to `consume`. An error thrown by `consume` aborts the transfer and
    /// is the call's error. Any other status is thrown as from `execute`.
    public func stream(
        _ request: UpstreamRequest,
        options: UpstreamCallOptions,
        bufferLimitBytes: Int = UpstreamBodyStream.defaultBufferLimitBytes,
        consume: @escaping @Sendable (_ chunk: [UInt8]) async throws(UpstreamError) -> Void
    ) async throws(UpstreamError) -> UpstreamStreamedResponse {
        let started = clock.now()
        let progress = StreamProgress()
        let transport = self.transport
        let failure = { AttemptFailure(mayRetry: !progress.handedOutAnyByte, upstreamAnswered: progress.consumerRefused) }
        // The policy's timeout bounds a stall here, not the whole answer (see `stallTimeoutNanoseconds`);
        // the whole call is bounded by the request's deadline, or by `maximumStreamedCallNanoseconds`.
        var streamed = request
        streamed.stallTimeoutNanoseconds = policy.timeoutNanoseconds
        streamed.timeoutNanoseconds = Self.maximumStreamedCallNanoseconds
        let head = try await call(
            streamed, options: options, wholeCallTimeout: Self.maximumStreamedCallNanoseconds, failure: failure
        ) { outbound throws(UpstreamError) in
            try await Self.streamAttempt(
                outbound, transport: transport, bufferLimitBytes: bufferLimitBytes, consume: consume, progress: progress)
        }
        return UpstreamStreamedResponse(
            status: head.status, headers: head.headers, durationNanoseconds: clock.now().subtractingClamped(started),
            body: progress.lastAttemptStatistics)
    }

    /// One attempt of a streamed call: the transport fills a bounded stream while a second task
    /// hands its chunks to `consume`; whichever fails first ends the other.
    private static func streamAttempt(
        _ outbound: UpstreamRequest, transport: any UpstreamTransport, bufferLimitBytes: Int,
        consume: @escaping @Sendable ([UInt8]) async throws(UpstreamError) -> Void, progress: StreamProgress
    ) async throws(UpstreamError) -> UpstreamResponse {
        enum Part: Sendable {
            case transport(Result<UpstreamResponse, UpstreamError>)
            case consumer(UpstreamError?)
        }
        let body = UpstreamBodyStream(bufferLimitBytes: bufferLimitBytes)
        let (transportResult, consumerError) = await withTaskGroup(of: Part.self) { group in
            group.addTask {
                let result: Result<UpstreamResponse, UpstreamError>
                do throws(UpstreamError) {
                    result = .success(try await transport.execute(outbound, streamingSuccessBodyInto: body))
                } catch {
                    result = .failure(error)
                }
                body.end(transferFailed: (try? result.get()) == nil)
                return .transport(result)
            }
            group.addTask {
                while let chunk = await body.next() {
                    progress.recordHandedOut()
                    do throws(UpstreamError) {
                        try await consume(chunk)
                    } catch {
                        body.abandon()
                        progress.recordConsumerRefusal()
                        return .consumer(error)
                    }
                }
                return .consumer(nil)
            }
            var transportResult: Result<UpstreamResponse, UpstreamError> = .failure(.cancelled)
            var consumerError: UpstreamError?
            for await part in group {
                switch part {
                case .transport(let result):
                    transportResult = result
                case .consumer(let error):
                    consumerError = error
                    // The transfer is of no use any more: abort it rather than wait for its end.
                    if error != nil { group.cancelAll() }
                }
            }
            return (transportResult, consumerError)
        }
        progress.recordAttempt(body.statistics)
        if let consumerError { throw consumerError }
        return try transportResult.get()
    }

    /// What a failed attempt means beyond its error.
    private struct AttemptFailure {
        /// Whether it may still be repeated.
        var mayRetry = true
        /// The upstream answered and the caller refused what it sent (a streamed body its consumer
        /// cannot read): for the breaker, as when a whole answer cannot be decoded, the upstream is up.
        var upstreamAnswered = false
    }

    /// The longest a streamed call may take without a request deadline (a background index
    /// refresh): 10 minutes, a 1 GiB answer at under 2 MB/s.
    public static let maximumStreamedCallNanoseconds: UInt64 = 600_000_000_000

    /// The shared policy of `execute` and `stream` around `attempt`, which sends one attempt.
    /// - Parameter wholeCallTimeout: what bounds the call besides the request's deadline (the
    ///   policy's timeout, unless the call streams).
    private func call(
        _ request: UpstreamRequest, options: UpstreamCallOptions, wholeCallTimeout: UInt64? = nil, failure: () -> AttemptFailure,
        attempt: (UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse
    ) async throws(UpstreamError) -> UpstreamResponse {
        let start = clock.now()
        let callTimeout = wholeCallTimeout ?? policy.timeoutNanoseconds
        let timeout = min(request.timeoutNanoseconds ?? callTimeout, callTimeout)
        let deadline = min(start.addingClamped(timeout), options.deadlineNanoseconds ?? .max)

        let earlyRejection: UpstreamError? = state.withLock { state in
            state.budget.recordCall(now: start)
            return state.refusal(for: options.credentialKey, now: start)
        }
        if let earlyRejection {
            finishCall(with: .failure(earlyRejection))
            throw earlyRejection
        }

        do throws(UpstreamError) {
            // Without a request deadline the wait is unbounded, as the policy's timeout is per call.
            try await limiter.acquire(
                client: options.clientID, deadline: options.deadlineNanoseconds.map { _ in deadline }, clock: clock)
        } catch {
            finishCall(with: .failure(error))
            throw error
        }
        defer { limiter.release(client: options.clientID) }

        do throws(UpstreamError) {
            let response = try await performAttempts(
                request, options: options, deadline: deadline, failure: failure, attempt: attempt)
            finishCall(with: .success(response))
            return response
        } catch {
            finishCall(with: .failure(error))
            throw error
        }
    }

    /// The refusal a call with this credential would get right now without reaching the upstream
    /// (a Retry-After pause, an open circuit); nil when it would be attempted. For callers that
    /// charge a budget per call and must not charge for one that never leaves.
    public func refusalBeforeCalling(credentialKey: String) -> UpstreamError? {
        let now = clock.now()
        return state.withLock { $0.refusal(for: credentialKey, now: now) }
    }

    /// Calls `requestsPerMinute` still allows in the current rolling minute; nil without that budget.
    public func callsLeftThisMinute() -> Int? {
        let now = clock.now()
        return state.withLock { state in
            guard sharedBudget != nil else { return state.pacer.callsLeftThisMinute(now: now) }
            // The shared budget's own count, as of the last slot (it only grows back since).
            if let shared = state.sharedCallsLeft, now.subtractingClamped(shared.at) < OutboundPacer.minute { return shared.calls }
            return (state.fallbackPacer?.pacer ?? state.pacer).callsLeftThisMinute(now: now)
        }
    }

    /// The configured `requestsPerMinute`; nil without that budget.
    public var requestsPerMinute: Int? { policy.requestsPerMinute }

    /// When calls with this credential may go upstream again, if a Retry-After pause is in force.
    public func pausedUntil(credentialKey: String) -> UInt64? {
        let now = clock.now()
        return state.withLock { $0.activePause(for: credentialKey, now: now) }
    }

    /// Whole seconds (at least 1) a client should wait before retrying after `error`, for a
    /// `Retry-After` header; nil when the error carries no such hint.
    public func retryAfterSeconds(for error: UpstreamError) -> Int? {
        let nanoseconds: UInt64
        switch error {
        case .httpStatus(_, _, let seconds?): return max(1, seconds)
        case .paused(let until), .circuitOpen(let until), .minuteBudgetSpent(let until):
            nanoseconds = until.subtractingClamped(clock.now())
        default: return nil
        }
        let seconds = nanoseconds / 1_000_000_000 + (nanoseconds % 1_000_000_000 == 0 ? 0 : 1)
        return Int(max(1, min(seconds, UInt64(Int32.max))))
    }

    public func statistics() -> UpstreamEndpointStatistics {
        let now = clock.now()
        var snapshot = state.withLock { state in
            state.statistics.circuitState = state.breaker.state
            state.statistics.circuitOpenings = state.breaker.timesOpened
            state.statistics.activePauses = state.pausedUntil.values.filter { $0 > now }.count
            return state.statistics
        }
        snapshot.inFlight = limiter.inUse
        snapshot.waiting = limiter.waiting
        return snapshot
    }

    // MARK: - Attempts

    private func performAttempts(
        _ request: UpstreamRequest, options: UpstreamCallOptions, deadline: UInt64, failure: () -> AttemptFailure,
        attempt: (UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse
    ) async throws(UpstreamError) -> UpstreamResponse {
        var retryNumber = 0
        var lastError: UpstreamError?
        while true {
            let (isProbe, slot) = try await admitAttempt(options: options, deadline: deadline, lastError: lastError)
            if slot > clock.now() {
                do {
                    try await clock.sleep(until: slot)
                } catch {
                    settleBreaker(.neutral, isProbe: isProbe)
                    throw .cancelled
                }
            }

            let remaining = deadline.subtractingClamped(clock.now())
            guard remaining > 0 else {
                settleBreaker(.neutral, isProbe: isProbe)
                throw lastError ?? .timeout
            }
            var outbound = request
            outbound.headers.replaceOrAdd(name: "X-Request-Id", value: options.requestId)
            outbound.headers.replaceOrAdd(name: "traceparent", value: options.traceparent)
            let attemptTimeout = min(remaining, policy.perAttemptTimeoutNanoseconds ?? .max)
            outbound.timeoutNanoseconds = attemptTimeout
            outbound.connectTimeoutNanoseconds = min(
                request.connectTimeoutNanoseconds ?? policy.connectTimeoutNanoseconds, attemptTimeout)
            state.withLock { $0.statistics.attempts += 1 }

            let error: UpstreamError
            do throws(UpstreamError) {
                let response = try await attempt(outbound)
                if (200..<300).contains(response.status) {
                    settleBreaker(.success, isProbe: isProbe)
                    return response
                }
                let retryAfter = response.headers["Retry-After"].flatMap {
                    RetryAfter.seconds(from: $0, nowUnixSeconds: clock.unixTimeSeconds())
                }
                error = .httpStatus(status: response.status, body: response.body, retryAfterSeconds: retryAfter)
            } catch let transportError {
                error = transportError
            }

            let failed = failure()
            settleBreaker(failed.upstreamAnswered ? .success : breakerOutcome(for: error), isProbe: isProbe)

            if case .httpStatus(let status, _, let retryAfter?) = error, status == 429 || status == 503 {
                if retryAfter > 0 { await startPause(credentialKey: options.credentialKey, seconds: retryAfter, status: status) }
                throw error
            }
            guard options.isIdempotent, retryNumber < policy.maxRetries, isRetryable(error), failed.mayRetry else { throw error }

            let now = clock.now()
            let delay = backoff(retryNumber: retryNumber)
            guard now.addingClamped(delay) < deadline else { throw error }
            let allowed = state.withLock { state in
                let allowed = state.budget.tryRetry(now: now)
                if allowed { state.statistics.retries += 1 } else { state.statistics.retriesDeniedByBudget += 1 }
                return allowed
            }
            guard allowed else {
                logger.debug("retry budget exhausted", metadata: ["requestId": "\(options.requestId)", "error": "\(error)"])
                throw error
            }
            logger.debug(
                "retrying upstream call",
                metadata: [
                    "requestId": "\(options.requestId)", "retry": "\(retryNumber + 1)",
                    "delayMs": "\(delay / 1_000_000)", "error": "\(error)",
                ])
            if delay > 0 {
                do {
                    try await clock.sleep(until: now.addingClamped(delay))
                } catch {
                    throw .cancelled
                }
            }
            retryNumber += 1
            lastError = error
        }
    }

    /// Checks pause, deadline and breaker for one attempt and reserves its pacing slot (in the
    /// shared budget when there is one). A retry that is refused reports the error that made it a
    /// retry, which says more.
    private func admitAttempt(options: UpstreamCallOptions, deadline: UInt64, lastError: UpstreamError?)
        async throws(UpstreamError) -> (isProbe: Bool, slot: UInt64)
    {
        let now = clock.now()
        let pacesLocally = sharedBudget == nil
        let (admission, transition) = state.withLock {
            state -> (Result<(isProbe: Bool, slot: UInt64), UpstreamError>, CircuitState?) in
            guard now < deadline else { return (.failure(lastError ?? .timeout), nil) }
            if let until = state.activePause(for: options.credentialKey, now: now) {
                return (.failure(lastError ?? .paused(untilNanoseconds: until)), nil)
            }
            let isProbe: Bool
            switch state.breaker.admit(now: now) {
            case .rejected(let retryAt): return (.failure(lastError ?? .circuitOpen(retryAtNanoseconds: retryAt)), nil)
            case .probe: isProbe = true
            case .admitted: isProbe = false
            }
            guard pacesLocally else { return (.success((isProbe, now)), isProbe ? .halfOpen : nil) }
            let reservation = state.pacer.reserve(now: now, deadline: deadline)
            return (Self.admission(reservation, breaker: &state.breaker, now: now, isProbe: isProbe, lastError: lastError),
                    isProbe ? .halfOpen : nil)
        }
        if transition == .halfOpen {
            logger.info("circuit half-open: sending one probe", metadata: ["requestId": "\(options.requestId)"])
        }
        let (isProbe, _) = try admission.get()
        guard let sharedBudget else { return try admission.get() }

        let reservation = await sharedBudget.reserve(
            endpoint: name, credentialKey: options.credentialKey, pacing: state.withLock { $0.pacer.sharedPacing },
            maxWaitNanoseconds: deadline.subtractingClamped(now))
        let judged = clock.now()
        let shared: Result<(isProbe: Bool, slot: UInt64), UpstreamError> = state.withLock { state in
            switch reservation {
            case .slot(let delay, let callsLeft)?:
                if let callsLeft { state.sharedCallsLeft = (callsLeft, judged) }
                // Counted from the reply, not from the question: a slot is never used early
                // by the time the reply took, at worst late by it.
                return .success((isProbe, judged.addingClamped(delay)))
            case .beyondDeadline(let delay, let minuteBudget)?:
                _ = state.breaker.record(.neutral, isProbe: isProbe, now: judged)
                // The shared minute is spent: nothing is left, whatever an earlier reply said.
                if minuteBudget { state.sharedCallsLeft = (0, judged) }
                let refusal: UpstreamError = minuteBudget ? .minuteBudgetSpent(retryAtNanoseconds: judged.addingClamped(delay)) : .timeout
                return .failure(lastError ?? refusal)
            case .paused(let remaining)?:
                let until = judged.addingClamped(remaining)
                state.pausedUntil[options.credentialKey] = max(state.pausedUntil[options.credentialKey] ?? 0, until)
                _ = state.breaker.record(.neutral, isProbe: isProbe, now: judged)
                return .failure(lastError ?? .paused(untilNanoseconds: until))
            case nil:
                // The shared budget is out of reach: this replica paces alone, at its share.
                let replicas = sharedBudget.replicaCount
                if state.fallbackPacer?.replicas != replicas {
                    state.fallbackPacer = (state.pacer.share(amongReplicas: replicas), replicas)
                }
                var fallback = state.fallbackPacer?.pacer ?? state.pacer.share(amongReplicas: replicas)
                let reservation = fallback.reserve(now: judged, deadline: deadline)
                state.fallbackPacer = (fallback, replicas)
                return Self.admission(reservation, breaker: &state.breaker, now: judged, isProbe: isProbe, lastError: lastError)
            }
        }
        return try shared.get()
    }

    /// The slot a pacer gave, or the refusal when none comes before the deadline (settling the probe).
    private static func admission(
        _ reservation: OutboundPacer.Reservation, breaker: inout CircuitBreaker, now: UInt64, isProbe: Bool, lastError: UpstreamError?
    ) -> Result<(isProbe: Bool, slot: UInt64), UpstreamError> {
        switch reservation {
        case .slot(let slot):
            return .success((isProbe, slot))
        case .beyondDeadline(let earliest, let minuteBudget):
            _ = breaker.record(.neutral, isProbe: isProbe, now: now)
            // Waiting for the per-minute budget is not the upstream being slow: say so, with when.
            let refusal: UpstreamError = minuteBudget ? .minuteBudgetSpent(retryAtNanoseconds: earliest) : .timeout
            return .failure(lastError ?? refusal)
        }
    }

    private func breakerOutcome(for error: UpstreamError) -> CircuitBreaker.Outcome {
        if error.indicatesUpstreamFailure { return .failure }
        switch error {
        case .httpStatus, .bodyTooLarge: return .success  // the upstream answered
        default: return .neutral
        }
    }

    private func settleBreaker(_ outcome: CircuitBreaker.Outcome, isProbe: Bool) {
        let now = clock.now()
        let transition = state.withLock { $0.breaker.record(outcome, isProbe: isProbe, now: now) }
        switch transition {
        case .open(let until)?:
            logger.warning(
                "circuit opened",
                metadata: [
                    "reopensInMs": "\(until.subtractingClamped(now) / 1_000_000)",
                    "failureThreshold": "\(policy.circuitBreaker.failureThreshold)",
                ])
        case .closed?:
            logger.info("circuit closed")
        case .halfOpen?, nil:
            break
        }
    }

    private func isRetryable(_ error: UpstreamError) -> Bool {
        switch error {
        case .connection, .timeout: true
        case .httpStatus(let status, _, _): status == 502 || status == 503 || status == 504
        default: false
        }
    }

    private func backoff(retryNumber: Int) -> UInt64 {
        let shift = UInt64(min(retryNumber, 62))
        let (scaled, overflow) = policy.backoffBaseNanoseconds.multipliedReportingOverflow(by: 1 << shift)
        let ceiling = min(overflow ? .max : scaled, policy.backoffMaxNanoseconds)
        return min(jitter(ceiling), ceiling)
    }

    private func startPause(credentialKey: String, seconds: Int, status: Int) async {
        let now = clock.now()
        let (requested, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let duration = min(overflow ? .max : requested, policy.maxPauseNanoseconds)
        let until = now.addingClamped(duration)
        state.withLock { state in
            state.pausedUntil = state.pausedUntil.filter { $0.value > now }
            state.pausedUntil[credentialKey] = max(state.pausedUntil[credentialKey] ?? 0, until)
            state.statistics.pausesStarted += 1
        }
        logger.warning(
            "upstream asked to pause calls with this credential",
            metadata: ["status": "\(status)", "retryAfterSeconds": "\(seconds)", "pauseMs": "\(duration / 1_000_000)"])
        // Every replica calls with this credential: all of them pause.
        await sharedBudget?.pause(endpoint: name, credentialKey: credentialKey, nanoseconds: duration)
    }

    private func finishCall(with result: Result<UpstreamResponse, UpstreamError>) {
        let outcome: UpstreamCallOutcome
        switch result {
        case .success: outcome = .success
        case .failure(let error): outcome = UpstreamCallOutcome(error)
        }
        state.withLock { $0.statistics.callsByOutcome[outcome, default: 0] += 1 }
    }
}

/// What the attempts of one streamed call handed to its consumer.
private final class StreamProgress: Sendable {
    private let state = Mutex<(handedOut: Bool, consumerRefused: Bool, lastAttempt: UpstreamBodyStream.Statistics)>(
        (false, false, .init()))

    var handedOutAnyByte: Bool { state.withLock { $0.handedOut } }
    var consumerRefused: Bool { state.withLock { $0.consumerRefused } }
    var lastAttemptStatistics: UpstreamBodyStream.Statistics { state.withLock { $0.lastAttempt } }

    func recordHandedOut() { state.withLock { $0.handedOut = true } }
    func recordConsumerRefusal() { state.withLock { $0.consumerRefused = true } }
    func recordAttempt(_ statistics: UpstreamBodyStream.Statistics) { state.withLock { $0.lastAttempt = statistics } }
}
