import GatewayCache
import GatewayEventLoop
import GatewayHTTP
import GatewayJSON
import GatewayTestSupport
@testable import GatewayProviders
import GatewayUpstream
import ProviderSimulator
import Testing

/// The shared upstream path (cache, pauses, faults, accounting), exercised through the adapters
/// against the simulator.
@Suite struct ProviderFetcherTests {
    static let key = DemoCredential.kaizen
    static let everything = ExecutionFilter()

    func listCalls(_ harness: SimulatorHarness, _ provider: SimulatedProvider = .kaizen) -> Int {
        harness.simulator.counters(provider: provider).count(.list)
    }

    // MARK: - Requests

    @Test func eachTypeSendsItsCredentialAndTheCorrelationHeaders() async throws {
        try await withSimulator { harness in
            _ = try await harness.kaizen().executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key, requestID: "req-kz"))
            let kaizen = try #require(harness.log.last)
            #expect(kaizen.method == "POST" && kaizen.target == "/executions/list")
            #expect(kaizen.headers["Authorization"] == "Bearer \(Self.key)")
            #expect(kaizen.headers["Accept"] == "application/json")
            #expect(kaizen.headers["Content-Type"] == "application/json")
            #expect(kaizen.headers["X-Request-Id"] == "req-kz")
            #expect(kaizen.headers["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            #expect(kaizen.headers["X-API-Key"] == nil && kaizen.headers["X-Org-ID"] == nil)

            _ = try await harness.kapso(workflowIDs: ["00000000-0000-0000-0000-000000000001"])
                .executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(DemoCredential.kapso, requestID: "req-kp"))
            let kapso = try #require(harness.log.last)
            #expect(kapso.method == "GET" && kapso.target.hasPrefix("/platform/v1/workflows/00000000-0000-0000-0000-000000000001/executions?"))
            #expect(kapso.headers["X-API-Key"] == DemoCredential.kapso)
            #expect(kapso.headers["Authorization"] == nil)
            #expect(kapso.headers["X-Request-Id"] == "req-kp")
            #expect(kapso.headers["Content-Type"] == nil)

            _ = try await harness.b3os().executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(DemoCredential.b3os))
            let b3os = try #require(harness.log.last)
            #expect(b3os.target == "/v1/executions?limit=100&offset=0")
            #expect(b3os.headers["Authorization"] == "Bearer \(DemoCredential.b3os)")
            #expect(b3os.headers["X-Org-ID"] == nil)
        }
    }

    // MARK: - Cache

    @Test func identicalReadsWithinTheListTTLMakeOneCall() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let first = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key))
            let second = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key, requestID: "other"))
            #expect(first.cache == .miss)
            #expect(second.cache == .hit)
            #expect(second.executions == first.executions)
            #expect(listCalls(harness) == 1)

            harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds)
            #expect(try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key)).cache == .miss)
            #expect(listCalls(harness) == 2)

            // Cache-Control: no-cache skips the fresh entry.
            #expect(try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key, bypassCache: true)).cache == .miss)
            #expect(listCalls(harness) == 3)
            let statistics = provider.fetcher.statistics()
            #expect(statistics.upstreamCalls[.success] == 3)
            #expect(statistics.cacheHits == 1)
        }
    }

    @Test func differentCredentialsNeverShareAnEntry() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let acme = try await provider.executions(matching: Self.everything, after: nil, limit: 100, call: harness.call(DemoCredential.kaizen))
            let globex = try await provider.executions(matching: Self.everything, after: nil, limit: 100, call: harness.call(DemoCredential.kaizenSecondOrganization))
            #expect(globex.cache == .miss)
            #expect(Set(acme.executions.map(\.id)).isDisjoint(with: globex.executions.map(\.id)))
            let counters = harness.simulator.counters(provider: .kaizen)
            #expect(counters.count(.list, credential: DemoCredential.kaizen) == 1)
            #expect(counters.count(.list, credential: DemoCredential.kaizenSecondOrganization) == 1)
            // The same secret under another identity is another entry too: the identity is the key.
            var renamed = harness.call(DemoCredential.kaizen)
            renamed.credentialIdentity = "another-identity"
            #expect(try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: renamed).cache == .miss)
            #expect(listCalls(harness) == 3)
        }
    }

    @Test func concurrentIdenticalReadsShareOneCall() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            harness.simulator.setFault(SimulatedFault(.latency(milliseconds: SimulatorHarness.heldLatencyMilliseconds), endpoint: .list, calls: 1...1), provider: .kaizen)
            let call = harness.call(Self.key)
            async let pages = withTaskGroup(of: CacheDisposition.self) { group in
                for _ in 0..<5 {
                    group.addTask { (try? await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call))?.cache ?? .stale }
                }
                var dispositions: [CacheDisposition] = []
                for await disposition in group { dispositions.append(disposition) }
                return dispositions
            }
            var joined = false
            for _ in 0..<20_000 where !joined {
                joined = await harness.cache.statistics().coalescedWaiters == 4
                if !joined { try await Task.sleep(nanoseconds: 100_000) }
            }
            #expect(joined)
            harness.heldLatency.open()
            // Waiters of a shared load report miss: their data was fetched during their request.
            #expect(await pages == [CacheDisposition](repeating: .miss, count: 5))
            #expect(listCalls(harness) == 1)
            #expect(provider.fetcher.statistics().coalescedWaits == 4)
        }
    }

    @Test func anExpiredEntryIsServedStaleWhenTheUpstreamFails() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let call = harness.call(Self.key)
            let fresh = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call)
            harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            harness.simulator.setFault(SimulatedFault(.status(code: 500, retryAfterSeconds: nil), endpoint: .list), provider: .kaizen)
            let stale = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call)
            #expect(stale.cache == .stale)
            #expect(stale.executions == fresh.executions)
            #expect(listCalls(harness) == 2)
            // The client's no-cache refuses stale data.
            await #expect(throws: ProviderError.upstreamStatus(status: 500, detail: "Internal Server Error")) {
                try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key, bypassCache: true))
            }
            // Past the stale window the failure shows.
            harness.clocks.advance(milliseconds: SimulatorHarness.staleIfErrorMilliseconds)
            await #expect(throws: ProviderError.upstreamStatus(status: 500, detail: "Internal Server Error")) {
                try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call)
            }
            #expect(provider.fetcher.statistics().staleServes == 1)
            #expect(provider.fetcher.statistics().upstreamCalls[.httpError] == 3)
        }
    }

    @Test func errorAnswersAreNeverCached() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            harness.simulator.setFault(SimulatedFault(.status(code: 502, retryAfterSeconds: nil), endpoint: .list, calls: 1...1), provider: .kaizen)
            await #expect(throws: ProviderError.upstreamStatus(status: 502, detail: "Bad Gateway")) {
                try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key))
            }
            harness.simulator.setFault(SimulatedFault(.malformedJSON, endpoint: .list, calls: 1...1), provider: .kaizen)
            await #expect(throws: ProviderError.self) {
                try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key))
            }
            let page = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key))
            #expect(page.cache == .miss && page.executions.count == 5)
            #expect(listCalls(harness) == 3)
        }
    }

    // MARK: - Retry-After

    @Test func retryAfterPausesTheCredentialAndCachedDataIsServedMeanwhile() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let call = harness.call(Self.key)
            let warm = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call)
            harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            harness.simulator.setFault(SimulatedFault(.rateLimited(retryAfterSeconds: 30), calls: 1...1), provider: .kaizen)

            // The 429 itself: the expired entry is served stale.
            let during = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call)
            #expect(during.cache == .stale && during.executions == warm.executions)
            let callsAfter429 = harness.simulator.counters(provider: .kaizen).total
            #expect(callsAfter429 == 2)

            // Paused: cached data without a call; nothing cached fails at once with the time left.
            #expect(try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call).cache == .stale)
            harness.clocks.advance(milliseconds: 10_000)
            await #expect(throws: ProviderError.paused(retryAfterSeconds: 20)) {
                try await provider.executions(matching: ExecutionFilter(isTest: true), after: nil, limit: 5, call: call)
            }
            await #expect(throws: ProviderError.paused(retryAfterSeconds: 20)) {
                try await provider.detail(of: "ex_any", call: call)
            }
            #expect(harness.simulator.counters(provider: .kaizen).total == callsAfter429)
            // Another credential is not paused.
            #expect(try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(DemoCredential.kaizenSecondOrganization)).cache == .miss)

            harness.clocks.advance(milliseconds: 20_001)
            #expect(try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call).cache == .miss)
            let statistics = provider.fetcher.statistics()
            #expect(statistics.upstreamCalls[.rateLimited] == 1)
            #expect(statistics.pausedRefusals == 2)
        }
    }

    @Test func aFirstRateLimitWithNothingCachedIsAPause() async throws {
        try await withSimulator { harness in
            let provider = try harness.b3os()
            harness.simulator.setFault(SimulatedFault(.rateLimited(retryAfterSeconds: 7)), provider: .b3os)
            await #expect(throws: ProviderError.paused(retryAfterSeconds: 7)) {
                try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(DemoCredential.b3os))
            }
            await #expect(throws: ProviderError.paused(retryAfterSeconds: 7)) {
                try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(DemoCredential.b3os))
            }
            #expect(harness.simulator.counters(provider: .b3os).total == 1)
        }
    }

    // MARK: - Faults

    static let faults: [(String, SimulatedFault.Kind, ProviderError?)] = [
        ("reset", .resetConnection, nil),
        ("truncated body", .truncateBody(afterBytes: 40), nil),
        ("502", .status(code: 502, retryAfterSeconds: nil), .upstreamStatus(status: 502, detail: "Bad Gateway")),
        ("500", .status(code: 500, retryAfterSeconds: nil), .upstreamStatus(status: 500, detail: "Internal Server Error")),
        ("503 with Retry-After", .status(code: 503, retryAfterSeconds: 5), .paused(retryAfterSeconds: 5)),
        ("503 without", .status(code: 503, retryAfterSeconds: nil), .upstreamStatus(status: 503, detail: "Service Unavailable")),
        ("429 without Retry-After", .status(code: 429, retryAfterSeconds: nil), .upstreamStatus(status: 429, detail: "Too Many Requests")),
        ("429", .rateLimited(retryAfterSeconds: 60), .paused(retryAfterSeconds: 60)),
        ("401", .status(code: 401, retryAfterSeconds: nil), .credentialRejected(status: 401)),
        ("403", .status(code: 403, retryAfterSeconds: nil), .credentialRejected(status: 403)),
        ("404 on a list", .status(code: 404, retryAfterSeconds: nil), .upstreamStatus(status: 404, detail: "Not Found")),
    ]

    @Test(arguments: SimulatedProvider.allCases)
    func everyFaultKindBecomesItsProviderError(_ simulated: SimulatedProvider) async throws {
        // Kapso reads a workflow it no longer knows as empty (KapsoProviderTests).
        for (label, kind, expected) in Self.faults where !(simulated == .kapso && label == "404 on a list") {
            try await withSimulator { harness in
                let (provider, credential): (any ExecutionProvider, String) = switch simulated {
                case .kaizen: (try harness.kaizen(), DemoCredential.kaizen)
                case .kapso: (try harness.kapso(workflowIDs: ["00000000-0000-0000-0000-000000000001"]), DemoCredential.kapso)
                case .b3os: (try harness.b3os(), DemoCredential.b3os)
                }
                harness.simulator.setFault(SimulatedFault(kind, endpoint: .list), provider: simulated)
                do throws(ProviderError) {
                    _ = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(credential))
                    Issue.record("\(simulated) \(label): no error")
                } catch {
                    if let expected {
                        #expect(error == expected, "\(simulated) \(label)")
                    } else {
                        guard case .unreachable = error else {
                            Issue.record("\(simulated) \(label): \(error)")
                            return
                        }
                    }
                    #expect(!error.description.contains(credential))
                }
            }
        }
    }

    @Test func malformedAnswersAreMalformedResponses() async throws {
        try await withSimulator { harness in
            let kaizen = try harness.kaizen()
            let b3os = try harness.b3os()
            let kapso = try harness.kapso()
            let cases: [(SimulatedProvider, any UpstreamBackedProvider, String)] = [
                (.kaizen, kaizen, DemoCredential.kaizen), (.kapso, kapso, DemoCredential.kapso), (.b3os, b3os, DemoCredential.b3os),
            ]
            for (simulated, provider, credential) in cases {
                let organization = ProviderSimulator.demoCredentials.first { $0.key == credential }?.organizationIDs.first ?? ""
                let knownID = try #require(harness.simulator.executionIDs(provider: simulated, organizationID: organization).first)
                harness.simulator.setFault(SimulatedFault(.malformedJSON, calls: 1...2), provider: simulated)
                for operation in ["list", "detail"] {
                    do throws(ProviderError) {
                        if operation == "list" {
                            _ = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(credential))
                        } else {
                            _ = try await provider.detail(of: knownID, call: harness.call(credential))
                        }
                        Issue.record("\(simulated) \(operation): no error")
                    } catch {
                        guard case .malformedResponse = error else {
                            Issue.record("\(simulated) \(operation): \(error)")
                            continue
                        }
                    }
                }
                #expect(provider.fetcher.statistics().upstreamCalls[.malformedResponse] == 2)
            }
        }
    }

    @Test func aProviderThatDoesNotAnswerTimesOut() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen(policy: SimulatorHarness.policy(timeoutMilliseconds: 300))
            harness.simulator.setFault(SimulatedFault(.timeout, endpoint: .detail), provider: .kaizen)
            await #expect(throws: ProviderError.timeout) {
                try await provider.detail(of: "ex_1", call: harness.call(Self.key))
            }
            #expect(provider.fetcher.statistics().upstreamCalls[.timeout] == 1)
        }
    }

    @Test func aCallerThatGoesAwayStopsItsUpstreamTransfer() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen(policy: SimulatorHarness.policy(timeoutMilliseconds: 600_000))
            harness.simulator.setFault(SimulatedFault(.timeout, endpoint: .detail), provider: .kaizen)
            let call = harness.call(Self.key)
            let request = Task { try await provider.detail(of: "ex_1", call: call) }
            // Generous bounds: they only keep a broken build from hanging, and a full parallel run
            // on two loaded cores can take seconds to get the transfer going.
            #expect(await waitUntil(seconds: 60) { harness.client.clientStatistics().inFlight == 1 })
            // The client hung up: its request task is cancelled, and nobody else waits for the answer.
            request.cancel()
            _ = await request.result
            #expect(await waitUntil(seconds: 60) {
                let statistics = harness.client.clientStatistics()
                return statistics.transfersCancelled == 1 && statistics.inFlight == 0
            })
        }
    }

    @Test func largeAnswersAreParsedAndDecodedOffTheEventLoop() async throws {
        try await withSimulator(executions: 200) { harness in
            let fetcher = try harness.kaizen().fetcher
            let call = harness.call(Self.key)
            let loop = try EventLoop(name: "fetch-test-loop")
            try loop.start()
            // Decoding on the loop thread, for the fetched answer and then for the cached one.
            let decodedOnLoop = try await Task(executorPreference: loop) { () async throws(ProviderError) -> [Bool] in
                var placements: [Bool] = []
                for _ in 0..<2 {
                    let fetched = try await fetcher.fetchListing(
                        ProviderRequest(method: .post, path: "/executions/list", jsonBody: [:]), call: call
                    ) { json throws(ProviderError) in
                        (loop.inEventLoop, json.arrayValue?.count ?? json.objectValue?.count ?? 0)
                    }
                    placements.append(fetched.value.0)
                }
                return placements
            }.value
            #expect(decodedOnLoop == [false, false])
            loop.stop()
            await loop.waitUntilStopped()
        }
    }

    @Test func rejectedCredentialsAreReportedWithoutTheCredential() async throws {
        try await withSimulator { harness in
            let wrong = "kz_live_SECRET_do_not_echo"
            let kaizen = try harness.kaizen()
            do throws(ProviderError) {
                _ = try await kaizen.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(wrong))
                Issue.record("accepted an unknown key")
            } catch {
                #expect(error == .credentialRejected(status: 401))
                #expect(!error.description.contains(wrong))
            }
            await #expect(throws: ProviderError.credentialRejected(status: 403)) {
                try await harness.b3os().executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(DemoCredential.b3osWithoutReadScope))
            }
        }
    }

    @Test func anOpenCircuitRefusesWithoutCalling() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen(policy: SimulatorHarness.policy(failureThreshold: 1))
            harness.simulator.setFault(SimulatedFault(.status(code: 500, retryAfterSeconds: nil)), provider: .kaizen)
            await #expect(throws: ProviderError.upstreamStatus(status: 500, detail: "Internal Server Error")) {
                try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key))
            }
            await #expect(throws: ProviderError.circuitOpen(retryAfterSeconds: 10)) {
                try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: harness.call(Self.key))
            }
            #expect(harness.simulator.counters(provider: .kaizen).total == 1)
            #expect(provider.fetcher.statistics().circuitOpenRefusals == 1)
        }
    }

    // MARK: - Accounting

    @Test func upstreamCallsAreCountedPerRequest() async throws {
        try await withSimulator { harness in
            let provider = try harness.kapso()
            var call = harness.call(DemoCredential.kapso)
            let first = UpstreamCallCounter()
            call.upstreamCalls = first
            let page = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call)
            // The workflow list plus one page per workflow.
            #expect(first.value == 1 + 4)
            let second = UpstreamCallCounter()
            call.upstreamCalls = second
            _ = try await provider.executions(matching: Self.everything, after: nil, limit: 5, call: call)
            _ = try await provider.detail(of: try #require(page.executions.first).providerExecutionID, call: call)
            #expect(second.value == 1)
            #expect(first.value == 5)
            #expect(harness.simulator.counters(provider: .kapso).total == 6)
        }
    }
}
