import GatewayHTTP
import GatewayTestSupport
@testable import GatewayUpstream
import Testing

@Suite struct EndpointPauseTests {
    private func endpoint(_ transport: ScriptedTransport, clock: TestClock, policy: UpstreamPolicy = fastPolicy())
        -> UpstreamEndpoint
    {
        UpstreamEndpoint(name: "kapso", policy: policy, transport: transport, clock: clock, jitter: { $0 })
    }

    @Test func retryAfterOn429PausesThatCredentialOnly() async throws {
        let clock = TestClock()
        let start = clock.now()
        let transport = ScriptedTransport(steps: [
            response(429, headers: ["Retry-After": "30"], body: #"{"error":"rate limited"}"#), response(200),
        ])
        let endpoint = endpoint(transport, clock: clock)
        let request = UpstreamRequest(url: "http://kapso.test/workflows")

        await #expect(throws: UpstreamError.httpStatus(
            status: 429, body: Array(#"{"error":"rate limited"}"#.utf8), retryAfterSeconds: 30)) {
            try await endpoint.execute(request, options: makeOptions(credentialKey: "a"))
        }
        // Same credential: refused without a call until the pause ends.
        await #expect(throws: UpstreamError.paused(untilNanoseconds: start + 30 * second)) {
            try await endpoint.execute(request, options: makeOptions(credentialKey: "a"))
        }
        #expect(transport.callCount == 1)
        #expect(endpoint.pausedUntil(credentialKey: "a") == start + 30 * second)
        #expect(endpoint.retryAfterSeconds(for: .paused(untilNanoseconds: start + 30 * second)) == 30)

        // Another credential is not affected.
        _ = try await endpoint.execute(request, options: makeOptions(credentialKey: "b"))
        #expect(transport.callCount == 2)

        clock.advance(by: 29 * second)
        await #expect(throws: UpstreamError.paused(untilNanoseconds: start + 30 * second)) {
            try await endpoint.execute(request, options: makeOptions(credentialKey: "a"))
        }
        clock.advance(by: 1 * second)
        _ = try await endpoint.execute(request, options: makeOptions(credentialKey: "a"))
        #expect(transport.callCount == 3)
        #expect(endpoint.pausedUntil(credentialKey: "a") == nil)
        let statistics = endpoint.statistics()
        #expect(statistics.pausesStarted == 1)
        #expect(statistics.callsByOutcome[.paused] == 2)
    }

    @Test func retryAfterAsHTTPDateOn503PausesUntilThatDateAndIsNotRetried() async {
        // Mon, 21 Sep 2026 12:00:00 GMT is Unix time 1_789_992_000: 1_800 s after the clock's wall time.
        let clock = TestClock(unixSeconds: 1_789_990_200)
        let start = clock.now()
        let transport = ScriptedTransport(steps: [
            response(503, headers: ["Retry-After": "Mon, 21 Sep 2026 12:00:00 GMT"]), response(200),
        ])
        let endpoint = endpoint(transport, clock: clock)
        await #expect(throws: UpstreamError.httpStatus(status: 503, body: [], retryAfterSeconds: 1_800)) {
            try await endpoint.execute(UpstreamRequest(url: "http://kapso.test/x"), options: makeOptions())
        }
        #expect(transport.callCount == 1)
        #expect(endpoint.pausedUntil(credentialKey: "cred-a") == start + 1_800 * second)
    }

    @Test func a429WithoutRetryAfterDoesNotPause() async throws {
        let transport = ScriptedTransport(steps: [response(429), response(200)])
        let endpoint = endpoint(transport, clock: TestClock())
        await #expect(throws: UpstreamError.httpStatus(status: 429, body: [], retryAfterSeconds: nil)) {
            try await endpoint.execute(UpstreamRequest(url: "http://kapso.test/x"), options: makeOptions())
        }
        _ = try await endpoint.execute(UpstreamRequest(url: "http://kapso.test/x"), options: makeOptions())
        #expect(endpoint.statistics().pausesStarted == 0)
    }

    @Test func anUnreasonablyLongRetryAfterIsCapped() async {
        let clock = TestClock()
        var policy = fastPolicy()
        policy.maxPause = .nanoseconds(600 * second)
        let transport = ScriptedTransport(steps: [response(429, headers: ["Retry-After": "99999999999999999999"])])
        let endpoint = endpoint(transport, clock: clock, policy: policy)
        await #expect(throws: UpstreamError.self) {
            try await endpoint.execute(UpstreamRequest(url: "http://kapso.test/x"), options: makeOptions())
        }
        #expect(endpoint.pausedUntil(credentialKey: "cred-a") == clock.now() + 600 * second)
    }

    @Test func aMalformedRetryAfterIsIgnored() async {
        let transport = ScriptedTransport(steps: [response(429, headers: ["Retry-After": "soon"])])
        let endpoint = endpoint(transport, clock: TestClock())
        await #expect(throws: UpstreamError.httpStatus(status: 429, body: [], retryAfterSeconds: nil)) {
            try await endpoint.execute(UpstreamRequest(url: "http://kapso.test/x"), options: makeOptions())
        }
        #expect(endpoint.pausedUntil(credentialKey: "cred-a") == nil)
    }
}

@Suite struct EndpointCircuitBreakerTests {
    private func endpoint(_ transport: ScriptedTransport, clock: TestClock) -> UpstreamEndpoint {
        UpstreamEndpoint(
            name: "b3os", policy: fastPolicy(maxRetries: 0), transport: transport, clock: clock, jitter: { $0 })
    }

    private func call(_ endpoint: UpstreamEndpoint) async -> Result<UpstreamResponse, UpstreamError> {
        do throws(UpstreamError) {
            return .success(try await endpoint.execute(UpstreamRequest(url: "http://b3os.test/v1/executions"), options: makeOptions()))
        } catch {
            return .failure(error)
        }
    }

    @Test func opensAfterFiveConsecutiveFailuresAndFailsFast() async {
        let clock = TestClock()
        let transport = ScriptedTransport(steps: [
            .failure(.connection(reason: "refused")), .failure(.timeout), response(500), response(503),
            .failure(.malformedResponse(reason: "garbage")), response(200),
        ])
        let endpoint = endpoint(transport, clock: clock)
        for _ in 0..<5 { _ = await call(endpoint) }
        #expect(endpoint.statistics().circuitState == .open(untilNanoseconds: clock.now() + 10 * second))

        let rejected = await call(endpoint)
        #expect(throws: UpstreamError.circuitOpen(retryAtNanoseconds: clock.now() + 10 * second)) { try rejected.get() }
        #expect(transport.callCount == 5)
        #expect(endpoint.retryAfterSeconds(for: .circuitOpen(retryAtNanoseconds: clock.now() + 10 * second)) == 10)
        #expect(endpoint.statistics().callsByOutcome[.circuitOpen] == 1)
    }

    @Test func clientErrorsDoNotCountAndSuccessResetsTheCount() async {
        let clock = TestClock()
        let transport = ScriptedTransport { _, index throws(UpstreamError) in
            // Four failures, a 404 (the upstream answered), four failures.
            if index == 4 { return UpstreamResponse(status: 404) }
            return UpstreamResponse(status: 500)
        }
        let endpoint = endpoint(transport, clock: clock)
        for _ in 0..<9 { _ = await call(endpoint) }
        #expect(endpoint.statistics().circuitState == .closed)
        _ = await call(endpoint)
        #expect(endpoint.statistics().circuitState != .closed)
    }

    @Test func halfOpenLetsExactlyOneProbeThroughAndItsSuccessCloses() async throws {
        let clock = TestClock()
        let gate = Gate()
        let transport = ScriptedTransport { _, index throws(UpstreamError) in
            if index < 5 { throw .connection(reason: "refused") }
            if index == 5 { await gate.wait() }
            return UpstreamResponse(status: 200)
        }
        let endpoint = endpoint(transport, clock: clock)
        for _ in 0..<5 { _ = await call(endpoint) }
        clock.advance(by: 10 * second)

        let probe = Task { await call(endpoint) }
        #expect(await waitUntil { transport.callCount == 6 })
        #expect(endpoint.statistics().circuitState == .halfOpen)
        let second = await call(endpoint)
        #expect(throws: UpstreamError.circuitOpen(retryAtNanoseconds: clock.now())) { try second.get() }
        #expect(transport.callCount == 6)

        gate.open()
        _ = try await probe.value.get()
        #expect(endpoint.statistics().circuitState == .closed)
        _ = try await call(endpoint).get()
        #expect(transport.callCount == 7)
    }

    @Test func aFailedProbeOpensTheCircuitAgain() async {
        let clock = TestClock()
        let transport = ScriptedTransport(steps: [response(502)])
        let endpoint = endpoint(transport, clock: clock)
        for _ in 0..<5 { _ = await call(endpoint) }
        clock.advance(by: 10 * second)
        _ = await call(endpoint)
        #expect(transport.callCount == 6)
        #expect(endpoint.statistics().circuitState == .open(untilNanoseconds: clock.now() + 10 * second))
        #expect(endpoint.statistics().circuitOpenings == 2)
        _ = await call(endpoint)
        #expect(transport.callCount == 6)
    }

    @Test func aCancelledProbeLeavesTheNextCallToProbe() async throws {
        let clock = TestClock()
        let transport = ScriptedTransport { _, index throws(UpstreamError) in
            if index < 5 { throw .connection(reason: "refused") }
            if index == 5 { throw .cancelled }
            return UpstreamResponse(status: 200)
        }
        let endpoint = endpoint(transport, clock: clock)
        for _ in 0..<5 { _ = await call(endpoint) }
        clock.advance(by: 10 * second)
        _ = await call(endpoint)
        #expect(endpoint.statistics().circuitState == .halfOpen)
        _ = try await call(endpoint).get()
        #expect(endpoint.statistics().circuitState == .closed)
    }

    @Test func retriesStopWhenTheirFailuresOpenTheCircuit() async {
        let clock = TestClock()
        var policy = fastPolicy(maxRetries: 10)
        policy.circuitBreaker.failureThreshold = 3
        let transport = ScriptedTransport(steps: [.failure(.connection(reason: "refused"))])
        let endpoint = UpstreamEndpoint(name: "b3os", policy: policy, transport: transport, clock: clock, jitter: { $0 })
        await #expect(throws: UpstreamError.connection(reason: "refused")) {
            try await endpoint.execute(UpstreamRequest(url: "http://b3os.test/x"), options: makeOptions())
        }
        #expect(transport.callCount == 3)
    }
}
