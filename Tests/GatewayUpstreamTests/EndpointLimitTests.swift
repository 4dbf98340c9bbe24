import GatewayHTTP
import GatewayTestSupport
@testable import GatewayUpstream
import Synchronization
import Testing

@Suite struct EndpointPacingTests {
    @Test func sequentialCallsAreSpacedEvenly() async throws {
        let clock = TestClock()
        let start = clock.now()
        let transport = ScriptedTransport(steps: [response(200)])
        let endpoint = UpstreamEndpoint(
            name: "kaizen", policy: fastPolicy(requestsPerSecond: 10), transport: transport, clock: clock)
        for _ in 0..<4 {
            _ = try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        }
        #expect(clock.sleepDeadlines == [100, 200, 300].map { start + $0 * millisecond })
        #expect(transport.callCount == 4)
    }

    @Test func aBurstGoesBackToBackThenSpacingResumes() async throws {
        let clock = TestClock()
        let start = clock.now()
        var policy = fastPolicy(requestsPerSecond: 10)
        policy.burst = 3
        let transport = ScriptedTransport(steps: [response(200)])
        let endpoint = UpstreamEndpoint(name: "kaizen", policy: policy, transport: transport, clock: clock)
        for _ in 0..<5 {
            _ = try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        }
        #expect(clock.sleepDeadlines == [100, 200].map { start + $0 * millisecond })
    }

    @Test func retriesArePacedToo() async throws {
        let clock = TestClock()
        let start = clock.now()
        let transport = ScriptedTransport(steps: [.failure(.connection(reason: "reset")), response(200)])
        let endpoint = UpstreamEndpoint(
            name: "kaizen", policy: fastPolicy(requestsPerSecond: 1), transport: transport, clock: clock, jitter: { $0 })
        _ = try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        // Backoff to 50 ms, then the pacing slot at 1 s.
        #expect(clock.sleepDeadlines == [start + 50 * millisecond, start + 1 * second])
    }

    @Test func aSlotBeyondTheDeadlineFailsAtOnceWithoutReservingIt() async throws {
        let clock = TestClock()
        let transport = ScriptedTransport(steps: [response(200)])
        let endpoint = UpstreamEndpoint(
            name: "kaizen", policy: fastPolicy(requestsPerSecond: 1, timeout: 500 * millisecond),
            transport: transport, clock: clock)
        _ = try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        await #expect(throws: UpstreamError.timeout) {
            try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        }
        #expect(transport.callCount == 1)
        #expect(clock.sleepDeadlines.isEmpty)
        clock.advance(by: 1 * second)
        _ = try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/x"), options: makeOptions())
        #expect(transport.callCount == 2)
    }

    @Test func pacerHandsOutConsecutiveSlotsToSimultaneousCallers() {
        var pacer = OutboundPacer(requestsPerSecond: 4, burst: 1)
        let slots = (0..<5).map { _ in pacer.reserve(now: 1_000, deadline: .max) }
        let expected = (0..<5).map { OutboundPacer.Reservation.slot(UInt64(1_000 + $0 * 250_000_000)) }
        #expect(slots == expected)
    }

    @Test func unpacedWhenNoRateIsConfigured() {
        var pacer = OutboundPacer(requestsPerSecond: nil, burst: 1)
        #expect((0..<3).map { _ in pacer.reserve(now: 7, deadline: 7) } == [.slot(7), .slot(7), .slot(7)])
        var zero = OutboundPacer(requestsPerSecond: 0, burst: 1)
        #expect(zero.reserve(now: 7, deadline: 7) == .slot(7))
    }

    /// A flood of callers at random instants: no rolling 60 s ever holds more than the budget, and
    /// a caller is only refused when its slot really lies past its deadline.
    @Test func aPerMinuteBudgetHoldsInEveryRollingMinute() {
        let minute = OutboundPacer.minute
        for seed in 0..<20 {
            var random = SplitMix64(seed: UInt64(seed))
            let budget = Int.random(in: 1...120, using: &random)
            var pacer = OutboundPacer(requestsPerSecond: Bool.random(using: &random) ? 50 : nil, burst: 10, requestsPerMinute: budget)
            var now: UInt64 = 1_000
            var sent: [UInt64] = []
            for _ in 0..<2_000 {
                now += UInt64.random(in: 0...2_000_000_000, using: &random)
                let deadline = now + UInt64.random(in: 0...(20 * 1_000_000_000), using: &random)
                switch pacer.reserve(now: now, deadline: deadline) {
                case .slot(let slot):
                    #expect(slot >= now && slot <= deadline)
                    sent.append(slot)
                case .beyondDeadline(let earliest, _):
                    #expect(earliest > deadline)
                }
            }
            #expect(zip(sent, sent.dropFirst()).allSatisfy { $0 <= $1 }, "slots in order")
            // The slot `budget` places later must lie a whole minute after each one.
            for index in sent.indices.dropFirst(budget) {
                #expect(sent[index] >= sent[index - budget] + minute, "seed \(seed): \(budget + 1) calls within one minute")
            }
            #expect(sent.count > budget, "the budget was exercised")
        }
    }

    @Test func aCallWithNoMinuteSlotBeforeItsDeadlineIsRefusedWithWhenTheNextOneIs() async throws {
        var policy = fastPolicy()
        policy.requestsPerSecond = nil
        policy.requestsPerMinute = 3
        let clock = TestClock()
        let transport = ScriptedTransport { _, _ throws(UpstreamError) in UpstreamResponse(status: 200) }
        let endpoint = UpstreamEndpoint(name: "kapso", policy: policy, transport: transport, clock: clock)
        for _ in 0..<3 {
            _ = try await endpoint.execute(UpstreamRequest(url: "http://kapso.test/x"), options: makeOptions())
        }
        clock.advance(by: 10 * second)
        // The fourth call's slot opens 60 s after the first: past this call's timeout.
        await #expect(throws: UpstreamError.minuteBudgetSpent(retryAtNanoseconds: clock.now() + 50 * second)) {
            _ = try await endpoint.execute(UpstreamRequest(url: "http://kapso.test/x"), options: makeOptions())
        }
        #expect(transport.callCount == 3)
        #expect(endpoint.retryAfterSeconds(for: .minuteBudgetSpent(retryAtNanoseconds: clock.now() + 50 * second)) == 50)
        clock.advance(by: 50 * second)
        _ = try await endpoint.execute(UpstreamRequest(url: "http://kapso.test/x"), options: makeOptions())
        #expect(transport.callCount == 4)
    }
}

@Suite struct EndpointConcurrencyTests {
    @Test func atMostMaxConcurrencyInFlightAndWaitersAdmittedInOrder() async throws {
        var policy = fastPolicy()
        policy.maxConcurrency = 2
        let gates = (0..<5).map { _ in Gate() }
        let transport = ScriptedTransport { request, _ throws(UpstreamError) in
            let index = Int(request.url.split(separator: "/").last.map(String.init) ?? "") ?? 0
            await gates[index].wait()
            return UpstreamResponse(status: 200)
        }
        let endpoint = UpstreamEndpoint(name: "kaizen", policy: policy, transport: transport, clock: TestClock())
        var tasks: [Task<Result<UpstreamResponse, UpstreamError>, Never>] = []
        for index in 0..<5 {
            tasks.append(Task {
                do throws(UpstreamError) {
                    return .success(try await endpoint.execute(
                        UpstreamRequest(url: "http://kaizen.test/\(index)"), options: makeOptions()))
                } catch { return .failure(error) }
            })
            // Start the next caller only once this one is in flight or queued, so the order is known.
            #expect(await waitUntil { endpoint.statistics().inFlight + endpoint.statistics().waiting == index + 1 })
        }
        #expect(transport.callCount == 2)
        #expect(endpoint.statistics().waiting == 3)

        gates[1].open()
        #expect(await waitUntil { transport.callCount == 3 })
        #expect(transport.inFlight == 2)
        gates[0].open()
        #expect(await waitUntil { transport.callCount == 4 })
        for gate in gates { gate.open() }
        for task in tasks { _ = try await task.value.get() }
        // The first two were admitted together (the waits above see admission, not the transport
        // call), so which reached the transport first is a race; the waiters went in arrival order.
        let urls = transport.requests.map(\.url)
        #expect(Set(urls.prefix(2)) == ["http://kaizen.test/0", "http://kaizen.test/1"])
        #expect(Array(urls.dropFirst(2)) == (2..<5).map { "http://kaizen.test/\($0)" })
        #expect(endpoint.statistics().inFlight == 0)
    }

    @Test func callsBeyondTheWaitingLimitAreRefusedAsOverloaded() async throws {
        var policy = fastPolicy()
        policy.maxConcurrency = 1
        policy.maxWaiting = 1
        let gate = Gate()
        let transport = ScriptedTransport { _, _ throws(UpstreamError) in
            await gate.wait()
            return UpstreamResponse(status: 200)
        }
        let endpoint = UpstreamEndpoint(name: "kaizen", policy: policy, transport: transport, clock: TestClock())
        let first = Task { try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/1"), options: makeOptions()) }
        #expect(await waitUntil { transport.callCount == 1 })
        let second = Task { try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/2"), options: makeOptions()) }
        #expect(await waitUntil { endpoint.statistics().waiting == 1 })
        await #expect(throws: UpstreamError.overloaded) {
            try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/3"), options: makeOptions())
        }
        gate.open()
        _ = try await first.value
        _ = try await second.value
        #expect(endpoint.statistics().callsByOutcome[.overloaded] == 1)
        #expect(endpoint.statistics().callsByOutcome[.success] == 2)
    }

    @Test func aCancelledWaiterLeavesTheQueueWithoutTakingAPermit() async throws {
        var policy = fastPolicy()
        policy.maxConcurrency = 1
        let gate = Gate()
        let transport = ScriptedTransport { _, _ throws(UpstreamError) in
            await gate.wait()
            return UpstreamResponse(status: 200)
        }
        let endpoint = UpstreamEndpoint(name: "kaizen", policy: policy, transport: transport, clock: TestClock())
        let holder = Task { try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/1"), options: makeOptions()) }
        #expect(await waitUntil { transport.callCount == 1 })
        let waiter = Task { () async throws(UpstreamError) -> UpstreamResponse in
            try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/2"), options: makeOptions())
        }
        #expect(await waitUntil { endpoint.statistics().waiting == 1 })
        waiter.cancel()
        let result = await waiter.result
        #expect(throws: UpstreamError.cancelled) { try result.get() }
        #expect(endpoint.statistics().waiting == 0)

        gate.open()
        _ = try await holder.value
        // The permit came back: a new call goes straight through.
        _ = try await endpoint.execute(UpstreamRequest(url: "http://kaizen.test/3"), options: makeOptions())
        #expect(transport.requests.map(\.url) == ["http://kaizen.test/1", "http://kaizen.test/3"])
        #expect(endpoint.statistics().inFlight == 0)
    }

    /// A permit released between a caller's finding none and its joining the queue reaches that
    /// caller. (It used to stay unused in the pool while the caller waited for a release that had
    /// already happened, and every later caller queued behind it: all calls to the provider hung.)
    @Test(.timeLimit(.minutes(1)))
    func aPermitReleasedWhileACallerJoinsTheQueueReachesIt() async throws {
        final class LimiterBox: Sendable {
            let limiter = Mutex<ConcurrencyLimiter?>(nil)
            let releasedOnce = Atomic<Bool>(false)
        }
        let box = LimiterBox()
        let limiter = ConcurrencyLimiter(limit: 1, maxWaiting: 10, beforeQueueing: {
            // The holder releases exactly in the gap, once.
            if !box.releasedOnce.exchange(true, ordering: .relaxed) { box.limiter.withLock { $0 }?.release() }
        })
        box.limiter.withLock { $0 = limiter }
        try await limiter.acquire()
        let admitted = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                do throws(UpstreamError) { try await limiter.acquire() } catch { return false }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(20))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        #expect(admitted, "the caller got the permit released while it joined the queue")
        #expect(limiter.inUse == 1 && limiter.waiting == 0)
    }

    /// Many callers taking and releasing permits at once: never more than the limit inside, and
    /// every one of them gets through (the time limit turns a lost wake-up into a failure).
    @Test(.timeLimit(.minutes(1)), arguments: 0..<20)
    func limiterNeverAdmitsMoreThanItsLimitUnderChurn(round: Int) async {
        let limiter = ConcurrencyLimiter(limit: 3, maxWaiting: 1_000)
        final class Occupancy: Sendable {
            let counts = Mutex<(inside: Int, highest: Int)>((0, 0))
            func enter() { counts.withLock { $0.inside += 1; $0.highest = max($0.highest, $0.inside) } }
            func leave() { counts.withLock { $0.inside -= 1 } }
        }
        let occupancy = Occupancy()
        await withTaskGroup(of: Void.self) { group in
            for index in 0..<1_000 {
                group.addTask {
                    do throws(UpstreamError) {
                        try await limiter.acquire()
                    } catch { return }
                    occupancy.enter()
                    if index % 3 == 0 { await Task.yield() }
                    occupancy.leave()
                    limiter.release()
                }
            }
        }
        let highest = occupancy.counts.withLock { $0.highest }
        #expect(highest <= 3)
        #expect(highest >= 1)
        #expect(limiter.inUse == 0)
    }
}
