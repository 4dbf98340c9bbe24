import GatewayIndex
@testable import GatewayProviders
import GatewayUpstream
import ProviderSimulator
import Testing

/// Provider indexes against the real simulator over HTTP: pages equal what the provider itself
/// lists, cost nothing while fresh, pick up what arrives and changes, and keep tenants apart.
@Suite struct IndexedProviderTests {
    static let organizations: [SimulatedProvider: String] = [.kaizen: "org_kz_acme", .kapso: "org_kp_acme", .b3os: "org_demo_acme"]
    static let keys: [SimulatedProvider: String] = [.kaizen: DemoCredential.kaizen, .kapso: DemoCredential.kapso, .b3os: DemoCredential.b3os]

    static func direct(_ provider: SimulatedProvider, _ harness: SimulatorHarness) throws -> any UpstreamBackedProvider {
        switch provider {
        case .kaizen: try harness.kaizen()
        case .kapso: try harness.kapso()
        case .b3os: try harness.b3os()
        }
    }

    static func indexed(_ provider: SimulatedProvider, _ harness: SimulatorHarness, store: IndexStore = IndexStore(maxBytes: 1 << 30)) throws -> any UpstreamBackedProvider {
        store.indexing(
            try direct(provider, harness),
            freshness: IndexFreshness(
                refreshAfterNanoseconds: UInt64(SimulatorHarness.listTTLMilliseconds) * 1_000_000,
                staleIfErrorNanoseconds: UInt64(SimulatorHarness.staleIfErrorMilliseconds) * 1_000_000
            ),
            clock: harness.clocks, logger: SimulatorHarness.quietLogger("test.index")
        )
    }

    /// Every execution as the provider itself lists it right now (through a cache-bypassing walk).
    static func truth(_ provider: SimulatedProvider, _ harness: SimulatorHarness, filter: ExecutionFilter = ExecutionFilter()) async throws -> [UnifiedExecution] {
        try await direct(provider, harness).walk(filter: filter, limit: 100, call: harness.call(keys[provider] ?? "", bypassCache: true))
    }

    static func calls(_ provider: SimulatedProvider, _ harness: SimulatorHarness) -> Int {
        harness.simulator.counters(provider: provider).total
    }

    @Test(arguments: [SimulatedProvider.kaizen, .kapso, .b3os])
    func aWalkFromTheIndexShowsWhatTheProviderListsAndCostsNothingWhileFresh(provider: SimulatedProvider) async throws {
        try await withSimulator(executions: 450, workflows: 12) { harness in
            let expected = try await Self.truth(provider, harness)
            #expect(expected.count == 450)
            let indexed = try Self.indexed(provider, harness)
            let call = harness.call(Self.keys[provider] ?? "")

            let before = Self.calls(provider, harness)
            let walked = try await indexed.walk(limit: 17, call: call)
            #expect(walked.map(\.id) == expected.map(\.id))
            #expect(walked.map(\.status) == expected.map(\.status))
            let walkCalls = Self.calls(provider, harness) - before
            switch provider {
            case .kaizen: #expect(walkCalls == 1, "one whole list serves every page")
            case .b3os: #expect(walkCalls <= 6, "about one window of 100 per 100 executions, not one per page: \(walkCalls)")
            case .kapso: #expect(walkCalls <= 1 + 12 * 2, "the workflow list, then each workflow's pages once: \(walkCalls)")
            }

            let again = Self.calls(provider, harness)
            let second = try await indexed.walk(limit: 50, call: call)
            #expect(second.map(\.id) == expected.map(\.id))
            #expect(Self.calls(provider, harness) == again, "a fresh index answers every page without a call")
        }
    }

    @Test(arguments: [SimulatedProvider.kaizen, .kapso, .b3os])
    func everyFilterIsEvaluatedOnTheIndex(provider: SimulatedProvider) async throws {
        try await withSimulator(executions: 300, workflows: 8) { harness in
            let all = try await Self.truth(provider, harness)
            let indexed = try Self.indexed(provider, harness)
            let sample = try #require(all.dropFirst(40).first)
            let window = (all[200].createdAt, all[60].createdAt)
            var filters: [(label: String, filter: ExecutionFilter)] = [
                ("status", ExecutionFilter(statuses: [try #require(sample.status)])),
                ("createdAfter/Before", ExecutionFilter(createdAfter: window.0, createdBefore: window.1)),
                ("q", ExecutionFilter(searchTerms: [String(sample.providerExecutionID.suffix(6))])),
            ]
            if let workflowID = sample.workflow?.id { filters.append(("workflowId", ExecutionFilter(workflowID: workflowID))) }
            try await indexed.expectWalksShowWhatEachFilterMatches(filters, in: all, limit: 7, call: harness.call(Self.keys[provider] ?? ""))
        }
    }

    @Test(arguments: [SimulatedProvider.kaizen, .kapso, .b3os])
    func aNewExecutionAppearsOnceTheListTTLHasPassed(provider: SimulatedProvider) async throws {
        try await withSimulator(executions: 120, workflows: 5) { harness in
            let indexed = try Self.indexed(provider, harness)
            let call = harness.call(Self.keys[provider] ?? "")
            _ = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 10, call: call)
            harness.clocks.advance(milliseconds: 1_000)
            let inserted = try harness.simulator.insertExecutions(provider: provider, organizationID: Self.organizations[provider])
            let newID = try #require(inserted.first.map { "\(provider.rawValue):\($0.id)" })

            // Within the list TTL the index answers as it stands, without a call.
            let before = Self.calls(provider, harness)
            let fresh = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 10, call: call)
            #expect(!fresh.executions.map(\.id).contains(newID))
            #expect(fresh.cache == .hit)
            #expect(Self.calls(provider, harness) == before)

            // Past it, the page is answered at once (stale) and a refresh runs behind it; a page
            // shortly after shows the new execution.
            harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds)
            var staleCall = call
            let staleCalls = UpstreamCallCounter()
            staleCall.upstreamCalls = staleCalls
            let stale = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 10, call: staleCall)
            #expect(stale.cache == .stale)
            var shown = false
            for _ in 0..<500 where !shown {
                let page = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 10, call: call)
                shown = page.executions.first?.id == newID
                if !shown { try await Task.sleep(nanoseconds: 10_000_000) }
            }
            #expect(shown)
            // The refresh ran behind the stale page, after its request: not that request's call.
            #expect(staleCalls.value == 0)
        }
    }

    @Test(arguments: [SimulatedProvider.kaizen, .kapso, .b3os])
    func noCacheBringsNewExecutionsInBeforeAnswering(provider: SimulatedProvider) async throws {
        try await withSimulator(executions: 120, workflows: 5) { harness in
            let indexed = try Self.indexed(provider, harness)
            let key = Self.keys[provider] ?? ""
            _ = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 10, call: harness.call(key))
            harness.clocks.advance(milliseconds: 1_000)
            let inserted = try harness.simulator.insertExecutions(provider: provider, organizationID: Self.organizations[provider])
            let page = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 10, call: harness.call(key, bypassCache: true))
            #expect(page.executions.first?.providerExecutionID == inserted.first?.id)
            #expect(page.cache == .miss)
            #expect(page.dataAsOf != nil)
        }
    }

    /// Executions keep arriving (more than one refresh reads, for B3OS) while a client walks:
    /// the walk shows every execution that existed when it began, each once, in order.
    @Test(arguments: [SimulatedProvider.kapso, .b3os, .kaizen])
    func aWalkWhileExecutionsArriveHasNoGapAndNoDuplicate(provider: SimulatedProvider) async throws {
        try await withSimulator(executions: 400, workflows: 6) { harness in
            let atStart = try await Self.truth(provider, harness)
            let indexed = try Self.indexed(provider, harness)
            let call = harness.call(Self.keys[provider] ?? "")
            let walked = try await indexed.walk(limit: 23, call: call) { pageNumber in
                harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
                // Twice, more B3OS executions than one head refresh reads (10 windows of 100).
                let count = provider == .b3os && (pageNumber == 2 || pageNumber == 9) ? 1_050 : 1 + pageNumber % 4
                _ = try harness.simulator.insertExecutions(provider: provider, count: count, organizationID: Self.organizations[provider])
                // Waits for the refresh the walk's pages start, so the next page reads the new head.
                _ = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 1, call: harness.call(Self.keys[provider] ?? "", bypassCache: true))
            }
            #expect(walked.map(\.id) == atStart.map(\.id))
        }
    }

    @Test(arguments: [SimulatedProvider.kapso, .b3os, .kaizen])
    func statusChangesOfActiveExecutionsAreCaughtByRefreshes(provider: SimulatedProvider) async throws {
        try await withSimulator(executions: 200, workflows: 8) { harness in
            let indexed = try Self.indexed(provider, harness)
            let key = Self.keys[provider] ?? ""
            harness.clocks.advance(milliseconds: 1_000)
            let inserted = try harness.simulator.insertExecutions(provider: provider, organizationID: Self.organizations[provider])
            let id = try #require(inserted.first?.id)
            let running = try await indexed.walk(limit: 100, call: harness.call(key))
            #expect(running.first { $0.providerExecutionID == id }?.status?.isTerminal == false)

            #expect(harness.simulator.finishExecutions(provider: provider, ids: [id], outcome: .failed) == [id])
            // Kapso re-reads two workflows with active executions per refresh; 8 workflows at most.
            var refreshes = 0
            var status: ExecutionStatus?
            while status != .failed, refreshes < 8 {
                harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
                let page = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 500, call: harness.call(key, bypassCache: true))
                status = page.executions.first { $0.providerExecutionID == id }?.status
                refreshes += 1
            }
            #expect(status == .failed)
            if provider != .kapso { #expect(refreshes == 1) }
        }
    }

    /// Between two full reads of Kaizen's list, a refresh asks only for what started since the
    /// head (`fromTs`): new executions come in at the cost of a small answer.
    @Test func kaizenRefreshesReadOnlyTheHeadBetweenFullReads() async throws {
        try await withSimulator(executions: 300, workflows: 4) { harness in
            let indexed = try Self.indexed(.kaizen, harness)
            let call = harness.call(DemoCredential.kaizen)
            _ = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 5, call: call)
            var bodies: [String] = []
            for refresh in 1...KaizenIndexSync.fullRefreshEvery {
                harness.clocks.advance(milliseconds: 1_000)
                let inserted = try harness.simulator.insertExecutions(provider: .kaizen, organizationID: "org_kz_acme")
                let page = try await indexed.executions(
                    matching: ExecutionFilter(), after: nil, limit: 5, call: harness.call(DemoCredential.kaizen, bypassCache: true))
                #expect(page.executions.first?.providerExecutionID == inserted.first?.id, "refresh \(refresh)")
                let lists = harness.log.all.filter { $0.target.hasSuffix("/executions/list") }
                bodies.append(String(decoding: lists.last?.body ?? [], as: UTF8.self))
            }
            #expect(bodies.dropLast().allSatisfy { $0.contains("fromTs") }, "\(bodies)")
            #expect(bodies.last == "{}", "every \(KaizenIndexSync.fullRefreshEvery)th refresh reads the whole list")
            let all = try await indexed.walk(limit: 100, call: call)
            #expect(all.count == 300 + KaizenIndexSync.fullRefreshEvery)
        }
    }

    @Test func aColdKapsoPageReadsOnlyTheWorkflowsThatCanHoldItsExecutions() async throws {
        try await withSimulator(executions: 600, workflows: 30) { harness in
            let all = try await Self.truth(.kapso, harness)
            let floor = 1 + Set(all.prefix(50).compactMap(\.workflow?.id)).count
            let indexed = try Self.indexed(.kapso, harness)
            let before = Self.calls(.kapso, harness)
            let page = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 50, call: harness.call(DemoCredential.kapso))
            #expect(page.executions.map(\.id) == all.prefix(50).map(\.id))
            let cost = Self.calls(.kapso, harness) - before
            #expect(cost <= 2 * floor, "cold first page: \(cost) calls, floor \(floor)")
            #expect(cost < 31, "fewer than one call per workflow")
        }
    }

    @Test func indexesAreKeptPerCredentialAndEvictedLeastRecentlyUsedFirst() async throws {
        try await withSimulator(executions: 80, workflows: 3) { harness in
            // A budget below one index: only the index in use is kept.
            let store = IndexStore(maxBytes: 1)
            let indexed = try Self.indexed(.kaizen, harness, store: store)
            let acme = try await indexed.walk(limit: 50, call: harness.call(DemoCredential.kaizen))
            let globex = try await indexed.walk(limit: 50, call: harness.call(DemoCredential.kaizenSecondOrganization))
            #expect(acme.map(\.id) == harness.simulator.executionIDs(provider: .kaizen, organizationID: "org_kz_acme").map { "kaizen:" + $0 })
            #expect(globex.map(\.id) == harness.simulator.executionIDs(provider: .kaizen, organizationID: "org_kz_globex").map { "kaizen:" + $0 })
            #expect(Set(acme.map(\.id)).isDisjoint(with: globex.map(\.id)))
            var statistics = store.statistics()
            #expect(statistics.indexes == 1)
            #expect(statistics.evictions == 1)
            #expect(statistics.executions == 80)
            #expect(statistics.bytes > 80 * 100)

            // The evicted tenant's index is built again on its next page.
            let before = Self.calls(.kaizen, harness)
            _ = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 5, call: harness.call(DemoCredential.kaizen))
            #expect(Self.calls(.kaizen, harness) == before + 1)
            statistics = store.statistics()
            #expect(statistics.evictions == 2)
        }
    }

    @Test func pagesThatShowRawRecordsAreReadFromTheProvider() async throws {
        try await withSimulator(executions: 30, workflows: 3) { harness in
            let indexed = try Self.indexed(.b3os, harness)
            var call = harness.call(DemoCredential.b3os)
            let plain = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 5, call: call)
            #expect(plain.executions.allSatisfy { $0.raw == .null })
            call.needsRawRecords = true
            let raw = try await indexed.executions(matching: ExecutionFilter(), after: nil, limit: 5, call: call)
            #expect(raw.executions.map(\.id) == plain.executions.map(\.id))
            #expect(raw.executions.allSatisfy { $0.raw != .null })
        }
    }

    @Test func theRequestsCallCeilingEndsAPageWhereTheIndexIsCompleteAndTheWalkContinues() async throws {
        try await withSimulator(executions: 500, workflows: 3) { harness in
            let expected = try await Self.truth(.b3os, harness)
            let indexed = try Self.indexed(.b3os, harness)
            var shown: [UnifiedExecution] = []
            var position: ProviderPosition?
            var cuts = 0
            for _ in 0..<100 {
                var call = harness.call(DemoCredential.b3os)
                call.allowance = UpstreamCallAllowance(UpstreamCallBudget(maxCallsPerRequest: 1) { nil })
                let page = try await indexed.executions(matching: ExecutionFilter(), after: position, limit: 150, call: call)
                shown += page.executions
                if let cut = page.scanCut {
                    cuts += 1
                    position = ProviderPosition(last: cut.scannedThrough)
                } else if let last = page.executions.last {
                    position = ProviderPosition(last: last.sortKey)
                }
                if page.exhausted { break }
            }
            #expect(cuts > 0)
            #expect(shown.map(\.id) == expected.map(\.id))
        }
    }
}

/// The provider's per-minute budget holds whatever the client traffic: a flood of pages on a
/// cold Kapso index, half of them asking for `no-cache`, on a fake clock that moves only when the
/// pacer waits.
@Suite struct IndexBudgetTests {
    @Test func aFloodOfPagesNeverSpendsMoreThanTheMinuteBudget() async throws {
        try await withSimulator(executions: 400, workflows: 30) { harness in
            let expected = try await IndexedProviderTests.truth(.kapso, harness)
            var policy = SimulatorHarness.policy()
            policy.requestsPerMinute = 20
            let store = IndexStore(maxBytes: 1 << 30)
            let indexed = store.indexing(
                try harness.kapso(policy: policy),
                freshness: IndexFreshness(refreshAfterNanoseconds: 5_000_000_000, staleIfErrorNanoseconds: 300_000_000_000),
                clock: harness.clocks, logger: SimulatorHarness.quietLogger("test.index")
            )
            // Rounds of 30 concurrent pages, a minute apart: within each minute at most 20 calls
            // go upstream (the rest are refused with Retry-After, never sent), and the index
            // keeps what each round read, so the pages complete after a few rounds.
            var refused = 0
            var completed = false
            for round in 0..<6 where !completed {
                let before = IndexedProviderTests.calls(.kapso, harness)
                let outcomes = await withTaskGroup(of: Result<[String], ProviderError>.self) { group in
                    for request in 0..<30 {
                        group.addTask {
                            do throws(ProviderError) {
                                let page = try await indexed.executions(
                                    matching: ExecutionFilter(), after: nil, limit: 150,
                                    call: harness.call(DemoCredential.kapso, requestID: "flood-\(round)-\(request)", bypassCache: request % 2 == 0)
                                )
                                return .success(page.executions.map(\.id))
                            } catch {
                                return .failure(error)
                            }
                        }
                    }
                    var all: [Result<[String], ProviderError>] = []
                    for await outcome in group { all.append(outcome) }
                    return all
                }
                let calls = IndexedProviderTests.calls(.kapso, harness) - before
                #expect(calls <= 20, "round \(round): \(calls) calls in one minute")
                for outcome in outcomes {
                    switch outcome {
                    case .success(let ids): #expect(ids == expected.prefix(150).map(\.id))
                    case .failure(.minuteBudgetSpent): refused += 1
                    case .failure(let error): Issue.record("unexpected \(error)")
                    }
                }
                completed = outcomes.allSatisfy { if case .success = $0 { true } else { false } }
                harness.clocks.advance(milliseconds: 61_000)
            }
            #expect(refused > 0, "the flood needed more than one minute's budget")
            #expect(completed)
        }
    }
}
