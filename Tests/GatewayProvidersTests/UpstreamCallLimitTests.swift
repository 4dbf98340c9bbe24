import ExecutionsAPI
import GatewayJSON
import GatewayTestSupport
@testable import GatewayProviders
import GatewayUpstream
import ProviderSimulator
import Synchronization
import Testing

/// The per-request ceiling on upstream calls, the client's call budget and the request deadline,
/// through the real unified layer and adapters against the simulator (fake clocks throughout).
@Suite struct UpstreamCallLimitTests {
    static let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    static func service(_ harness: SimulatorHarness, providers: [ProviderBinding], requestTimeoutNanoseconds: UInt64? = nil) -> ExecutionsService {
        ExecutionsService(
            providers: providers, cursorSecret: "call-limit-test-secret", now: { harness.clocks.now() },
            requestTimeoutNanoseconds: requestTimeoutNanoseconds
        )
    }

    static func facts(_ budget: UpstreamCallBudget?, bypassCache: Bool = false, page: Int = 0) -> RequestFacts {
        RequestFacts(requestID: "req-limit-\(page)", traceparent: traceparent, bypassCache: bypassCache, upstreamCallBudget: budget)
    }

    /// Grants `calls` calls, then refuses; counts what it was asked.
    final class CountingBudget: Sendable {
        private let left: Atomic<Int>
        let refusal = UpstreamCallBudgetRefusal(limit: 3, resetSeconds: 60, retryAfterSeconds: 20)

        init(calls: Int) { left = Atomic(calls) }

        var budget: UpstreamCallBudget {
            UpstreamCallBudget(maxCallsPerRequest: 1_000) { [self] in
                left.subtract(1, ordering: .relaxed).newValue >= 0 ? nil : refusal
            }
        }
    }

    @Test func aCallTheEndpointRefusesOnTheSpotCostsNoBudget() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen(policy: SimulatorHarness.policy(failureThreshold: 1))
            harness.simulator.setFault(SimulatedFault(.status(code: 500, retryAfterSeconds: nil)), provider: .kaizen)
            let charges = Atomic<Int>(0)
            let budget = UpstreamCallBudget(maxCallsPerRequest: 1_000) {
                charges.add(1, ordering: .relaxed)
                return nil
            }
            var call = harness.call(DemoCredential.kaizen)
            call.allowance = UpstreamCallAllowance(budget)
            // The first call goes upstream and fails, which opens the circuit: it was charged.
            await #expect(throws: ProviderError.upstreamStatus(status: 500, detail: "Internal Server Error")) {
                try await provider.detail(of: "ex_1", call: call)
            }
            #expect(charges.load(ordering: .relaxed) == 1)
            // The next ones are refused by the open circuit without leaving the gateway: not charged.
            for id in ["ex_2", "ex_3"] {
                await #expect(throws: ProviderError.circuitOpen(retryAfterSeconds: 10)) {
                    try await provider.detail(of: id, call: call)
                }
            }
            #expect(charges.load(ordering: .relaxed) == 1)
            #expect(harness.simulator.counters(provider: .kaizen).total == 1)
        }
    }

    struct Walk {
        var ids: [String] = []
        var pages = 0
        var cutPages = 0
        var shortPagesWithMore = 0
        var mostCallsInOneRequest = 0
    }

    static func walk(_ service: ExecutionsService, query: [(name: String, value: String)], limit: Int, budget: UpstreamCallBudget?) async throws -> Walk {
        var walk = Walk()
        var cursor: String?
        repeat {
            let items = cursor.map { [(name: "cursor", value: $0)] } ?? query + [("limit", String(limit))]
            let counter = UpstreamCallCounter()
            var pageFacts = facts(budget, page: walk.pages)
            pageFacts.upstreamCalls = counter
            let answer = try await service.list(items, client: .anonymous, facts: pageFacts).get()
            walk.mostCallsInOneRequest = max(walk.mostCallsInOneRequest, counter.value)
            let document = try JSONParser.parse(answer.body)
            let ids = (document["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
            walk.ids += ids
            cursor = document["page"]?["nextCursor"]?.stringValue
            if (document["providers"]?.arrayValue ?? []).contains(where: { $0["scanCutShort"] == .bool(true) }) { walk.cutPages += 1 }
            if ids.count < limit && cursor != nil { walk.shortPagesWithMore += 1 }
            walk.pages += 1
        } while cursor != nil && walk.pages < 500
        return walk
    }

    /// B3OS cannot filter by status, so the gateway scans its windows; with a ceiling of 2 calls
    /// per request each page stops early, says so, and the cursor resumes the scan exactly.
    @Test func theCeilingCutsAFilterScanAndTheCursorContinuesItWithNoGapOrDuplicate() async throws {
        try await withSimulator(executions: 700, workflows: 2) { harness in
            let binding = ProviderBinding(provider: try harness.b3os(), credential: UpstreamCredential(secret: DemoCredential.b3os))
            let service = Self.service(harness, providers: [binding])
            let query: [(name: String, value: String)] = [("provider", "b3os"), ("status", "failed,cancelled")]
            let ceiling = UpstreamCallBudget(maxCallsPerRequest: 2) { nil }

            let cut = try await Self.walk(service, query: query, limit: 100, budget: ceiling)
            let expected = try await harness.b3os().walk(
                filter: ExecutionFilter(statuses: [.failed, .cancelled]), limit: 100, call: harness.call(DemoCredential.b3os)
            ).map(\.id)

            #expect(expected.count > 20)
            #expect(cut.ids == expected)
            #expect(cut.cutPages >= 2)
            #expect(cut.shortPagesWithMore >= 2)
            #expect(cut.mostCallsInOneRequest <= 2)
        }
    }

    /// Kapso is read one workflow at a time and cannot search (`q` is applied in the gateway): the
    /// ceiling cuts the merge of its workflows too, and the walk still shows each match once, in order.
    @Test func theCeilingCutsAMergeOfKapsoWorkflowsWithNoGapOrDuplicate() async throws {
        try await withSimulator(executions: 800, workflows: 4) { harness in
            let binding = ProviderBinding(provider: try harness.kapso(), credential: UpstreamCredential(secret: DemoCredential.kapso))
            let service = Self.service(harness, providers: [binding])
            let query: [(name: String, value: String)] = [("provider", "kapso"), ("q", "a1")]
            let ceiling = UpstreamCallBudget(maxCallsPerRequest: 6) { nil }

            let cut = try await Self.walk(service, query: query, limit: 100, budget: ceiling)
            let expected = try await harness.kapso().walk(
                filter: ExecutionFilter(searchTerms: ["a1"]), limit: 100, call: harness.call(DemoCredential.kapso)
            ).map(\.id)

            #expect(expected.count > 20)
            #expect(cut.ids == expected)
            #expect(cut.cutPages >= 1, "\(cut.pages) pages, \(cut.mostCallsInOneRequest) calls, \(expected.count) expected")
            #expect(cut.mostCallsInOneRequest <= 6)
        }
    }

    @Test func aScanThatCannotStartWithinTheCeilingFailsTheProviderAndKeepsItsPlace() async throws {
        try await withSimulator(executions: 300, workflows: 2) { harness in
            let binding = ProviderBinding(provider: try harness.b3os(), credential: UpstreamCredential(secret: DemoCredential.b3os))
            let service = Self.service(harness, providers: [binding])
            let none = UpstreamCallBudget(maxCallsPerRequest: 0) { nil }
            let answer = try await service.list([("provider", "b3os"), ("status", "failed")], client: .anonymous, facts: Self.facts(none)).get()
            let document = try JSONParser.parse(answer.body)
            #expect(document["complete"] == .bool(false))
            let report = try #require(document["providers"]?.arrayValue?.first)
            #expect(report["error"]?["status"] == .integer(429))
            #expect(report["error"]?["detail"]?.stringValue?.contains("maxUpstreamCallsPerRequest") == true)
            #expect(harness.simulator.counters(provider: .b3os).count(.list) == 0)
        }
    }

    /// Over budget, a client is answered from the cache (fresh, or stale and marked so), even
    /// after `no-cache`; with nothing cached it gets a `429` naming the budget.
    @Test func aSpentBudgetIsAnsweredFromCacheOrRefusedNamingTheBudget() async throws {
        try await withSimulator { harness in
            let kaizen = try harness.kaizen()
            let service = Self.service(harness, providers: [ProviderBinding(provider: kaizen, credential: UpstreamCredential(secret: DemoCredential.kaizen))])
            let counting = CountingBudget(calls: 1)
            let query: [(name: String, value: String)] = [("provider", "kaizen"), ("limit", "5")]

            let first = try await service.list(query, client: .anonymous, facts: Self.facts(counting.budget, bypassCache: true)).get()
            #expect(first.cache == .miss)
            #expect(harness.simulator.counters(provider: .kaizen).count(.list) == 1)

            // The budget allowed exactly one call: this one is not made, the cached list answers.
            let second = try await service.list(query, client: .anonymous, facts: Self.facts(counting.budget, bypassCache: true)).get()
            #expect(second.entityTag == first.entityTag)
            #expect(second.cache == .hit)
            #expect(harness.simulator.counters(provider: .kaizen).count(.list) == 1)

            harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            let third = try await service.list(query, client: .anonymous, facts: Self.facts(counting.budget)).get()
            #expect(third.cache == .stale)
            #expect(third.entityTag == first.entityTag)
            #expect(harness.simulator.counters(provider: .kaizen).count(.list) == 1)

            let id = try #require(try JSONParser.parse(first.body)["data"]?.arrayValue?.first?["id"]?.stringValue)
            let detail = await service.detail(id: id, client: .anonymous, facts: Self.facts(counting.budget))
            guard case .failure(let problem) = detail else {
                Issue.record("expected a 429, got \(detail)")
                return
            }
            #expect(problem.status == .tooManyRequests)
            #expect(problem.retryAfterSeconds == 20)
            #expect(problem.callBudgetRefusal == counting.refusal)
            #expect(problem.detail.contains("upstreamCallsPerMinute"))
            let response = problem.response(requestID: "r")
            #expect(response.headers["Retry-After"] == "20")
            #expect(response.headers["RateLimit-Limit"] == "3")
            #expect(response.headers["RateLimit-Remaining"] == "0")
            #expect(response.headers["RateLimit-Reset"] == "60")
            #expect(harness.simulator.counters(provider: .kaizen).count(.detail) == 0)
        }
    }

    @Test func aListWhoseEveryProviderIsOverBudgetIsA429() async throws {
        try await withSimulator { harness in
            let service = Self.service(harness, providers: [
                ProviderBinding(provider: try harness.kaizen(), credential: UpstreamCredential(secret: DemoCredential.kaizen)),
                ProviderBinding(provider: try harness.b3os(), credential: UpstreamCredential(secret: DemoCredential.b3os)),
            ])
            let spent = CountingBudget(calls: 0)
            let result = await service.list([("limit", "5")], client: .anonymous, facts: Self.facts(spent.budget))
            guard case .failure(let problem) = result else {
                Issue.record("expected a 429, got \(result)")
                return
            }
            #expect(problem.status == .tooManyRequests)
            #expect(problem.callBudgetRefusal == spent.refusal)
        }
    }

    /// A caller that waited for another request's identical call, which that request's own
    /// budget refused, is not refused with it: it makes the call on its own account.
    @Test func aWaiterIsNotRefusedForAnotherRequestsSpentBudget() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let gate = Gate()
            let charging = Flag()
            let refusal = UpstreamCallBudgetRefusal(limit: 1, resetSeconds: 60, retryAfterSeconds: 60)
            var spent = harness.call(DemoCredential.kaizen, requestID: "req-spent")
            spent.allowance = UpstreamCallAllowance(UpstreamCallBudget(maxCallsPerRequest: 10) {
                charging.set()
                await gate.wait()
                return refusal
            })
            var funded = harness.call(DemoCredential.kaizen, requestID: "req-funded")
            funded.allowance = UpstreamCallAllowance(UpstreamCallBudget(maxCallsPerRequest: 10) { nil })
            let spentCall = spent, fundedCall = funded

            let refused = Task { () async -> Result<ProviderPage, ProviderError> in
                do throws(ProviderError) {
                    return .success(try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 5, call: spentCall))
                } catch {
                    return .failure(error)
                }
            }
            #expect(await waitUntil(seconds: 60) { charging.isSet })
            let waiter = Task { try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 5, call: fundedCall) }
            let deadline = ContinuousClock.now + .seconds(60)
            while await harness.cache.statistics().coalescedWaiters < 1, ContinuousClock.now < deadline {
                try? await Task.sleep(for: .milliseconds(1))
            }
            #expect(await harness.cache.statistics().coalescedWaiters == 1)
            gate.open()

            guard case .failure(let error) = await refused.value else {
                Issue.record("the request over its budget should have been refused")
                return
            }
            #expect(error == .callBudgetSpent(refusal))
            let page = try await waiter.value
            #expect(page.executions.count == 5)
            #expect(page.cache == .miss)
            #expect(harness.simulator.counters(provider: .kaizen).count(.list) == 1)
            #expect(fundedCall.allowance?.callsTaken == 1)
        }
    }

    /// Detail joins count against the ceiling too: the items past it carry a 429 problem of
    /// their own, the rest of the page is unaffected.
    @Test func joinsPastTheCeilingFailOnlyTheirItems() async throws {
        try await withSimulator { harness in
            let service = Self.service(harness, providers: [
                ProviderBinding(provider: try harness.kaizen(), credential: UpstreamCredential(secret: DemoCredential.kaizen)),
            ])
            let ceiling = UpstreamCallBudget(maxCallsPerRequest: 4) { nil }
            let answer = try await service.list(
                [("provider", "kaizen"), ("limit", "6"), ("include", "downloads")], client: .anonymous, facts: Self.facts(ceiling)
            ).get()
            let items = try JSONParser.parse(answer.body)["data"]?.arrayValue ?? []
            #expect(items.count == 6)
            let failed = items.filter { $0["enrichmentError"] != nil }
            #expect(failed.count == 3)
            #expect(failed.allSatisfy { $0["enrichmentError"]?["status"] == .integer(429) })
            #expect(harness.simulator.counters(provider: .kaizen).count(.detail) == 3)
        }
    }

    /// The request's deadline covers waiting for the provider's only slot: the detail request
    /// queued behind a held call gives up with a 504 at its deadline, without calling upstream.
    @Test func waitingForASlotPastTheRequestDeadlineIsAGatewayTimeout() async throws {
        try await withSimulator { harness in
            // The held call's real-time transfer limit must not run out however slow the machine is.
            var policy = SimulatorHarness.policy(timeoutMilliseconds: 600_000)
            policy.maxConcurrency = 1
            let kaizen = try harness.kaizen(policy: policy)
            let binding = ProviderBinding(provider: kaizen, credential: UpstreamCredential(secret: DemoCredential.kaizen))
            let holding = Self.service(harness, providers: [binding])
            let service = Self.service(harness, providers: [binding], requestTimeoutNanoseconds: 2_000_000_000)
            harness.simulator.setFault(
                SimulatedFault(.latency(milliseconds: SimulatorHarness.heldLatencyMilliseconds), endpoint: .list, calls: 1...1), provider: .kaizen)
            let holder = Task { await holding.list([("provider", "kaizen")], client: .anonymous, facts: Self.facts(nil)) }
            #expect(await waitUntil(seconds: 60) { kaizen.fetcher.endpoint.statistics().inFlight == 1 })

            let started = harness.clocks.now()
            let detail = await service.detail(id: "kaizen:exec-1", client: .anonymous, facts: Self.facts(nil, page: 1))
            guard case .failure(let problem) = detail else {
                Issue.record("expected a 504, got \(detail)")
                return
            }
            #expect(problem.status == .gatewayTimeout)
            // The fake clock moved only by the wait, which ended exactly at the request's deadline.
            #expect(harness.clocks.now() - started == 2_000_000_000)
            #expect(harness.simulator.counters(provider: .kaizen).count(.detail) == 0)
            #expect(kaizen.fetcher.endpoint.statistics().callsByOutcome[.timeout] == 1)

            harness.heldLatency.open()
            _ = await holder.value
        }
    }
}
