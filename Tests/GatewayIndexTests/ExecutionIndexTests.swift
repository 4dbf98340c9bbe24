import GatewayIndex
import GatewayProviders
import GatewayTestSupport
import Testing

/// Pages read from an index behave like a provider's keyset listing: in order, each execution
/// once, nothing that existed at the start of a walk lost while executions arrive and change,
/// and never past what the sources are known to cover.
@Suite struct ExecutionIndexTests {
    static let statuses: [ExecutionStatus] = [.running, .succeeded, .failed, .queued]

    static func execution(_ id: String, second: Int64, status: ExecutionStatus = .succeeded, workflow: String = "wf-1") -> UnifiedExecution {
        UnifiedExecution(
            provider: "p", providerExecutionID: id, workflow: WorkflowReference(id: workflow, name: nil), name: nil,
            status: status, providerStatus: status.rawValue,
            createdAt: Timestamp(nanosecondsSinceEpoch: 1_790_000_000_000_000_000 + second * 1_000_000_000),
            startedAt: nil, endedAt: nil, durationMs: nil, isTest: nil, attempts: nil, searchableValues: [],
            raw: ["id": .string(id)]
        )
    }

    static func random(_ random: inout SplitMix64, id: Int, workflow: String = "wf-1") -> UnifiedExecution {
        // Few distinct instants, so many executions share one and the id decides their order.
        execution(
            "ex-\(id)", second: Int64.random(in: 0..<400, using: &random),
            status: statuses.randomElement(using: &random) ?? .running, workflow: workflow
        )
    }

    /// The whole listing as a model: every execution in listing order.
    static func listing(_ executions: some Sequence<UnifiedExecution>) -> [UnifiedExecution] {
        executions.sorted { $0.sortKey.precedes($1.sortKey) }
    }

    @Test func pagesFollowTheListingOrderAndResumeAfterAnyPosition() {
        var random = SplitMix64(seed: 1)
        var index = ExecutionIndex()
        let all = (0..<500).map { Self.random(&random, id: $0) }
        for batch in stride(from: 0, to: all.count, by: 37) { index.upsert(all[batch..<min(all.count, batch + 37)].shuffled(using: &random)) }
        index.setCoverage(.everything, of: "all")
        let expected = Self.listing(all)
        #expect(index.count == 500)

        let whole = index.page(matching: ExecutionFilter(), after: nil, limit: 1_000)
        #expect(whole.executions.map(\.id) == expected.map(\.id))
        #expect(whole.exhausted && whole.sourcesToDeepen.isEmpty)
        #expect(whole.executions.allSatisfy { $0.raw == .null }, "the raw record is not kept")

        // Any position, including keys of no indexed execution (another provider's boundary).
        for _ in 0..<200 {
            let pivot = expected.randomElement(using: &random) ?? expected[0]
            let shifted = ExecutionSortKey(createdAt: pivot.createdAt, id: pivot.id + (Bool.random(using: &random) ? "~" : ""))
            let page = index.page(matching: ExecutionFilter(), after: shifted, limit: 7)
            let reference = expected.filter { shifted.precedes($0.sortKey) }.prefix(7)
            #expect(page.executions.map(\.id) == reference.map(\.id))
        }
    }

    @Test func walksShowEveryExecutionOnceWhileOthersArriveAndChange() {
        for seed in 0..<40 {
            var random = SplitMix64(seed: UInt64(seed))
            var index = ExecutionIndex()
            var nextID = 0
            var initial: [UnifiedExecution] = []
            for _ in 0..<Int.random(in: 0...300, using: &random) {
                initial.append(Self.random(&random, id: nextID))
                nextID += 1
            }
            index.upsert(initial)
            index.setCoverage(.everything, of: "all")
            let filter = seed % 2 == 0 ? ExecutionFilter() : ExecutionFilter(workflowID: "wf-1")
            var statusUnchanged = Set(initial.map(\.providerExecutionID))

            var shown: [UnifiedExecution] = []
            var position: ExecutionSortKey?
            var pages = 0
            while pages < 1_000 {
                pages += 1
                let page = index.page(matching: filter, after: position, limit: Int.random(in: 1...25, using: &random))
                shown += page.executions
                if let last = page.executions.last { position = last.sortKey }
                if page.exhausted || page.executions.isEmpty { break }
                // Between pages: new executions anywhere in time, and status changes of indexed ones.
                var changes: [UnifiedExecution] = []
                for _ in 0..<Int.random(in: 0...6, using: &random) {
                    changes.append(Self.random(&random, id: nextID, workflow: Bool.random(using: &random) ? "wf-1" : "wf-2"))
                    nextID += 1
                }
                for _ in 0..<Int.random(in: 0...3, using: &random) {
                    guard var changed = initial.randomElement(using: &random) else { break }
                    changed.status = .failed
                    changes.append(changed)
                    statusUnchanged.remove(changed.providerExecutionID)
                }
                index.upsert(changes)
            }
            let keys = shown.map(\.sortKey)
            #expect(zip(keys, keys.dropFirst()).allSatisfy { $0.precedes($1) }, "seed \(seed): strictly in order, so no duplicate")
            let shownIDs = Set(shown.map(\.providerExecutionID))
            let owed = initial.filter { filter.matches($0) && statusUnchanged.contains($0.providerExecutionID) }
            #expect(owed.allSatisfy { shownIDs.contains($0.providerExecutionID) }, "seed \(seed): nothing that existed at the start is lost")
            #expect(shown.allSatisfy { filter.matches($0) })
        }
    }

    @Test func aPageStopsWhereASourceMayStillHoldUnreadExecutions() {
        var index = ExecutionIndex()
        // Source "a" is read down to second 50; nothing of "b" is known yet.
        index.upsert((50...60).map { Self.execution("a\($0)", second: Int64($0), workflow: "a") })
        index.setCoverage(.through(Self.execution("a50", second: 50).sortKey), of: "a")
        index.setCoverage(.nothing, of: "b")
        let blocked = index.page(matching: ExecutionFilter(), after: nil, limit: 5)
        #expect(blocked.executions.isEmpty && blocked.sourcesToDeepen == ["b"] && !blocked.exhausted)
        // A filter that rules "b" out needs only "a".
        let onlyA = index.page(matching: ExecutionFilter(workflowID: "a"), after: nil, limit: 5, sources: ["a"])
        #expect(onlyA.executions.map(\.providerExecutionID) == ["a60", "a59", "a58", "a57", "a56"])

        // "b" holds nothing newer than second 55 (Kapso's last_executed_at says so).
        index.setCoverage(.through(ExecutionSortKey(createdAt: Self.execution("x", second: 56).createdAt, id: "")), of: "b")
        let page = index.page(matching: ExecutionFilter(), after: nil, limit: 10)
        #expect(page.executions.map(\.providerExecutionID) == ["a60", "a59", "a58", "a57", "a56"])
        #expect(page.sourcesToDeepen == ["b"], "a55 may have a neighbour in b")

        index.setCoverage(.everything, of: "b")
        let resumed = index.page(matching: ExecutionFilter(), after: page.executions.last?.sortKey, limit: 10)
        #expect(resumed.executions.map(\.providerExecutionID) == ["a55", "a54", "a53", "a52", "a51", "a50"])
        #expect(resumed.sourcesToDeepen == ["a"] && !resumed.exhausted, "a may hold more below 50")
    }

    /// A planner that reads only what pages ask for ends with exactly the full listing.
    @Test func readingSourcesOnDemandGivesTheFullListing() {
        for seed in 0..<20 {
            var random = SplitMix64(seed: 100 + UInt64(seed))
            let sources = ["w1", "w2", "w3", "w4"]
            var truth: [String: [UnifiedExecution]] = [:]
            var nextID = 0
            for source in sources {
                truth[source] = Self.listing((0..<Int.random(in: 0...80, using: &random)).map { _ in
                    defer { nextID += 1 }
                    return Self.random(&random, id: nextID, workflow: source)
                })
            }
            var index = ExecutionIndex()
            var readCount: [String: Int] = [:]
            for source in sources { index.setCoverage(.nothing, of: source) }

            var shown: [UnifiedExecution] = []
            var position: ExecutionSortKey?
            var reads = 0
            while reads < 10_000 {
                let page = index.page(matching: ExecutionFilter(), after: position, limit: 9)
                if !page.sourcesToDeepen.isEmpty && page.executions.count < 9 {
                    // Read one chunk of each source the page waits for, as an upstream page of 10.
                    for source in page.sourcesToDeepen {
                        reads += 1
                        let all = truth[source] ?? []
                        let start = readCount[source, default: 0]
                        let chunk = Array(all[start..<min(all.count, start + 10)])
                        readCount[source] = start + chunk.count
                        index.upsert(chunk)
                        index.setCoverage(start + chunk.count >= all.count ? .everything : .through(chunk.last?.sortKey ?? all[0].sortKey), of: source)
                    }
                    continue
                }
                shown += page.executions
                position = page.executions.last?.sortKey ?? position
                if page.exhausted { break }
            }
            let expected = Self.listing(truth.values.joined())
            #expect(shown.map(\.id) == expected.map(\.id), "seed \(seed)")
        }
    }

    @Test func aChangedCreationInstantMovesTheExecutionAndSizesFollow() {
        var index = ExecutionIndex()
        // y's status is the one x changes to: shared strings do not grow with the change.
        index.upsert([Self.execution("x", second: 10), Self.execution("y", second: 20, status: .failed)])
        let sizeOfTwo = index.estimatedBytes
        index.upsert([Self.execution("x", second: 30, status: .failed)])
        #expect(index.count == 2 && index.estimatedBytes == sizeOfTwo)
        index.setCoverage(.everything, of: "all")
        let page = index.page(matching: ExecutionFilter(), after: nil, limit: 10)
        #expect(page.executions.map(\.providerExecutionID) == ["x", "y"])
        #expect(page.executions.first?.status == .failed)
        #expect(index.contains(providerExecutionID: "x") && !index.contains(providerExecutionID: "z"))
        // The later of two readings in one batch wins.
        index.upsert([Self.execution("z", second: 5, status: .running), Self.execution("z", second: 5, status: .succeeded)])
        #expect(index.page(matching: ExecutionFilter(statuses: [.succeeded]), after: nil, limit: 10).executions.map(\.providerExecutionID) == ["z"])
    }
}
