import GatewayHTTP
import GatewayTestSupport
@testable import GatewayUpstream
import Synchronization
import Testing

@Suite struct EndpointFairnessTests {
    /// Client A fills the only slot and queues 50 more calls; client B's one call, queued after all
    /// of them, is the next admitted.
    @Test func oneClientsBurstDoesNotQueueAnotherClientBehindIt() async throws {
        var policy = fastPolicy()
        policy.maxConcurrency = 1
        let gates = Mutex<[String: Gate]>([:])
        let transport = ScriptedTransport { request, _ throws(UpstreamError) in
            let gate = gates.withLock { gates in
                if let known = gates[request.url] { return known }
                let made = Gate()
                gates[request.url] = made
                return made
            }
            await gate.wait()
            return UpstreamResponse(status: 200)
        }
        func open(_ url: String) {
            let gate = gates.withLock { gates in
                if let known = gates[url] { return known }
                let made = Gate()
                gates[url] = made
                return made
            }
            gate.open()
        }
        let endpoint = UpstreamEndpoint(name: "kaizen", policy: policy, transport: transport, clock: TestClock())
        func call(_ url: String, client: String) -> Task<UpstreamResponse, any Error> {
            var options = makeOptions()
            options.clientID = client
            return Task { try await endpoint.execute(UpstreamRequest(url: url), options: options) }
        }

        var tasks = [call("http://kaizen.test/a0", client: "a")]
        #expect(await waitUntil(seconds: 60) { transport.callCount == 1 })
        for index in 1...50 {
            tasks.append(call("http://kaizen.test/a\(index)", client: "a"))
            #expect(await waitUntil(seconds: 60) { endpoint.statistics().waiting == index })
        }
        tasks.append(call("http://kaizen.test/b", client: "b"))
        #expect(await waitUntil(seconds: 60) { endpoint.statistics().waiting == 51 })

        open("http://kaizen.test/a0")
        #expect(await waitUntil(seconds: 60) { transport.callCount == 2 })
        #expect(transport.requests.map(\.url)[1] == "http://kaizen.test/b")

        // Then A's queue drains in its own order.
        open("http://kaizen.test/b")
        for index in 1...50 { open("http://kaizen.test/a\(index)") }
        for task in tasks { _ = try await task.value }
        #expect(transport.requests.map(\.url).suffix(50) == (1...50).map { "http://kaizen.test/a\($0)" })
        #expect(endpoint.statistics().inFlight == 0)
        #expect(endpoint.statistics().waiting == 0)
    }

    @Test func clientsHoldingEquallyManySlotsTakeTurns() async throws {
        let limiter = ConcurrencyLimiter(limit: 1, maxWaiting: 100)
        try await limiter.acquire(client: "holder")
        final class Admissions: Sendable {
            let order = Mutex<[String]>([])
        }
        let admissions = Admissions()
        var tasks: [Task<Void, any Error>] = []
        for name in ["a1", "a2", "b1", "b2", "c1"] {
            let client = String(name.prefix(1))
            tasks.append(Task {
                try await limiter.acquire(client: client)
                admissions.order.withLock { $0.append(name) }
                limiter.release(client: client)
            })
            let expected = tasks.count
            #expect(await waitUntil(seconds: 60) { limiter.waiting == expected })
        }
        limiter.release(client: "holder")
        for task in tasks { try await task.value }
        #expect(admissions.order.withLock { $0 } == ["a1", "b1", "c1", "a2", "b2"])
        #expect(limiter.inUse == 0)
    }
}

@Suite struct LimiterWaitingRoomTests {
    /// With the waiting room full of one client's calls, another client's call takes the place of
    /// that client's newest one, until the two queues are as long as each other.
    @Test func aFullWaitingRoomMakesRoomForAClientWithFewerWaiters() async throws {
        let limiter = ConcurrencyLimiter(limit: 1, maxWaiting: 4)
        try await limiter.acquire(client: "a")
        final class Outcomes: Sendable {
            let byName = Mutex<[String: String]>([:])
            func record(_ name: String, _ outcome: String) { byName.withLock { $0[name] = outcome } }
            subscript(name: String) -> String? { byName.withLock { $0[name] } }
        }
        let outcomes = Outcomes()
        func enqueue(_ name: String) -> Task<Void, Never> {
            let client = String(name.prefix(1))
            return Task {
                do throws(UpstreamError) {
                    try await limiter.acquire(client: client)
                    outcomes.record(name, "admitted")
                    limiter.release(client: client)
                } catch {
                    outcomes.record(name, "\(error)")
                }
            }
        }
        var tasks: [Task<Void, Never>] = []
        for index in 1...4 {
            tasks.append(enqueue("a\(index)"))
            #expect(await waitUntil(seconds: 60) { limiter.waiting == index })
        }
        tasks.append(enqueue("b1"))
        #expect(await waitUntil(seconds: 60) { outcomes["a4"] != nil })
        #expect(outcomes["a4"] == "\(UpstreamError.overloaded)")
        #expect(await waitUntil(seconds: 60) { limiter.waiting == 4 })

        tasks.append(enqueue("c1"))
        #expect(await waitUntil(seconds: 60) { outcomes["a3"] != nil })
        #expect(await waitUntil(seconds: 60) { limiter.waiting == 4 })

        // a has 2 waiting, b 1: b's second call would leave b with more than a, so it is refused.
        await #expect(throws: UpstreamError.overloaded) { try await limiter.acquire(client: "b") }
        #expect(limiter.waiting == 4)

        limiter.release(client: "a")
        for task in tasks { await task.value }
        for name in ["a1", "a2", "b1", "c1"] { #expect(outcomes[name] == "admitted", "\(name)") }
        #expect(limiter.inUse == 0)
        #expect(limiter.waiting == 0)
    }
}

@Suite struct EndpointRequestDeadlineTests {
    /// The request's deadline covers the wait for a slot: a call still queued when it passes
    /// fails with `.timeout`, takes no permit and never reaches the upstream.
    @Test func waitingForASlotPastTheRequestDeadlineTimesOut() async throws {
        var policy = fastPolicy()
        policy.maxConcurrency = 1
        let clock = TestClock(autoAdvance: false)
        let gate = Gate()
        let transport = ScriptedTransport { _, _ throws(UpstreamError) in
            await gate.wait()
            return UpstreamResponse(status: 200)
        }
        let endpoint = UpstreamEndpoint(name: "kaizen", policy: policy, transport: transport, clock: clock)
        let holder = Task { try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/1"), options: makeOptions()) }
        #expect(await waitUntil(seconds: 60) { transport.callCount == 1 })

        var options = makeOptions()
        options.deadlineNanoseconds = clock.now() + 2 * second
        let waiter = Task { () async throws(UpstreamError) -> UpstreamResponse in
            try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/2"), options: options)
        }
        #expect(await waitUntil(seconds: 60) { endpoint.statistics().waiting == 1 && clock.pendingSleepers == 1 })
        clock.advance(by: 2 * second - 1)
        #expect(endpoint.statistics().waiting == 1)
        clock.advance(by: 1)
        let result = await waiter.result
        #expect(throws: UpstreamError.timeout) { try result.get() }
        #expect(endpoint.statistics().waiting == 0)
        #expect(endpoint.statistics().callsByOutcome[.timeout] == 1)

        gate.open()
        _ = try await holder.value
        #expect(transport.callCount == 1)
        #expect(endpoint.statistics().inFlight == 0)
    }

    @Test func aDeadlineAlreadyPassedFailsAtOnceWhenASlotIsBusy() async throws {
        let limiter = ConcurrencyLimiter(limit: 1, maxWaiting: 10)
        let clock = TestClock(autoAdvance: false)
        try await limiter.acquire(client: "a")
        await #expect(throws: UpstreamError.timeout) {
            try await limiter.acquire(client: "b", deadline: clock.now(), clock: clock)
        }
        #expect(limiter.waiting == 0)
        limiter.release(client: "a")
        #expect(limiter.inUse == 0)
    }

    /// Each attempt's timeout is what is left of the request's deadline when it is shorter than the policy's.
    @Test func theAttemptTimeoutIsTheTimeLeftOfTheRequest() async throws {
        let clock = TestClock(autoAdvance: false)
        let transport = ScriptedTransport(steps: [response(200)])
        let endpoint = UpstreamEndpoint(
            name: "kaizen", policy: fastPolicy(timeout: 10 * second), transport: transport, clock: clock)
        var options = makeOptions()
        options.deadlineNanoseconds = clock.now() + 3 * second
        _ = try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/1"), options: options)
        #expect(transport.requests.first?.timeoutNanoseconds == 3 * second)

        _ = try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/2"), options: makeOptions())
        #expect(transport.requests.last?.timeoutNanoseconds == 10 * second)
    }

    @Test func aRequestDeadlineInThePastSendsNothing() async throws {
        let clock = TestClock(autoAdvance: false)
        let transport = ScriptedTransport(steps: [response(200)])
        let endpoint = UpstreamEndpoint(name: "kaizen", policy: fastPolicy(), transport: transport, clock: clock)
        var options = makeOptions()
        options.deadlineNanoseconds = clock.now()
        await #expect(throws: UpstreamError.timeout) {
            try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/1"), options: options)
        }
        #expect(transport.callCount == 0)
    }
}
