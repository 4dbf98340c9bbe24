import GatewayHTTP
import GatewayJSON
@testable import GatewayProviders
import ProviderSimulator
import Testing

@Suite struct KapsoProviderTests {
    static let key = DemoCredential.kapso
    static let organization = "org_kp_acme"

    static let statusTable: [String: ExecutionStatus] = [
        "running": .running, "waiting": .waiting, "handoff": .waiting, "ended": .succeeded, "failed": .failed,
    ]

    /// Every list item of the organisation as Kapso sends it, across its workflows.
    static func rawItems(_ harness: SimulatorHarness) async -> [JSONValue] {
        var items: [JSONValue] = []
        for workflow in harness.simulator.workflowIDs(provider: .kapso, organizationID: organization) {
            items += await simulatorJSON(
                harness.simulator.kapso, .get, "/platform/v1/workflows/\(workflow)/executions?limit=100", headers: [("X-API-Key", key)]
            )["data"]?.arrayValue ?? []
        }
        return items
    }

    func expectedIDs(_ harness: SimulatorHarness, name: String = "kapso") -> [String] {
        harness.simulator.executionIDs(provider: .kapso, organizationID: Self.organization).map { name + ":" + $0 }
    }

    @Test func mapsEveryFieldOfEveryListItem() async throws {
        try await withSimulator { harness in
            let provider = try harness.kapso()
            let page = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: harness.call(Self.key))
            let raw = await Self.rawItems(harness)
            #expect(raw.count == 40)
            #expect(page.executions.count == 40)
            #expect(page.exhausted)
            var seenNative = Set<String>()
            for item in raw {
                let object = try #require(item.objectValue)
                let id = try #require(object["id"]?.stringValue)
                let execution = try #require(page.executions.first { $0.providerExecutionID == id })
                #expect(execution.id == "kapso:" + id)
                let startedAt = try #require(object["started_at"]?.stringValue.flatMap { Timestamp(rfc3339: $0) })
                #expect(execution.createdAt == startedAt)
                #expect(execution.startedAt == startedAt)
                let endedAt = object["ended_at"]?.stringValue.flatMap { Timestamp(rfc3339: $0) }
                #expect(execution.endedAt == endedAt)
                #expect(execution.durationMs == endedAt.map { ($0.nanosecondsSinceEpoch - startedAt.nanosecondsSinceEpoch) / 1_000_000 })
                let workflow = try #require(object["workflow"]?.objectValue)
                #expect(execution.workflow == WorkflowReference(id: workflow["id"]?.stringValue ?? "?", name: workflow["name"]?.stringValue))
                let native = try #require(object["status"]?.stringValue)
                seenNative.insert(native)
                #expect(execution.providerStatus == native)
                #expect(execution.status == Self.statusTable[native])
                // Kapso has no name, test flag, attempts or parameters.
                #expect(execution.name == nil)
                #expect(execution.isTest == nil)
                #expect(execution.attempts == nil)
                #expect(execution.searchableValues.isEmpty)
                #expect(execution.raw == item)
            }
            #expect(seenNative == Set(Self.statusTable.keys))
        }
    }

    @Test func listItemsWithoutStatusTakeTheStatusTheyWereListedUnder() throws {
        let item: JSONValue = ["id": "3c90c3cc", "started_at": "2023-11-07T05:31:56Z", "ended_at": nil, "workflow": ["id": "wf", "name": "Bot", "status": "active"]]
        let unfiltered = try KapsoProvider.execution(from: item, provider: "kapso", listedUnderStatus: nil)
        #expect(unfiltered.status == nil)
        #expect(unfiltered.providerStatus == nil)
        let filtered = try KapsoProvider.execution(from: item, provider: "kapso", listedUnderStatus: "running")
        #expect(filtered.status == .running)
        let unknown = try KapsoProvider.execution(
            from: ["id": "x", "started_at": "2023-11-07T05:31:56Z", "status": "archived"], provider: "kapso", listedUnderStatus: nil
        )
        #expect(unknown.status == nil)
        #expect(unknown.providerStatus == "archived")
    }

    @Test func workflowsAreMergedIntoOneOrderAcrossEveryPageSize() async throws {
        try await withSimulator { harness in
            let provider = try harness.kapso()
            let call = harness.call(Self.key)
            let expected = expectedIDs(harness)
            #expect(expected.count == 40)
            for limit in [1, 13, 100] {
                let walked = try await provider.walk(limit: limit, call: call)
                #expect(walked.map(\.id) == expected, "limit \(limit)")
            }
            // The workflow list is read once per list TTL.
            #expect(harness.simulator.counters(provider: .kapso).count(.workflows) == 1)
        }
    }

    @Test func configuredWorkflowsAreTheOnlyOnesRead() async throws {
        try await withSimulator { harness in
            let workflows = harness.simulator.workflowIDs(provider: .kapso, organizationID: Self.organization)
            let chosen = Array(workflows.prefix(2))
            let provider = try harness.kapso(workflowIDs: chosen + [chosen[0]])
            let call = harness.call(Self.key)
            let all = try await harness.kapso(name: "everything").executions(matching: ExecutionFilter(), after: nil, limit: 100, call: call).executions
            let walked = try await provider.walk(limit: 3, call: call)
            #expect(walked.map(\.providerExecutionID) == all.filter { chosen.contains($0.workflow?.id ?? "") }.map(\.providerExecutionID))
            #expect(harness.simulator.counters(provider: .kapso).count(.workflows) == 1)  // only for "everything"
        }
    }

    @Test func everyFilterMeansWhatTheSharedFilterSays() async throws {
        try await withSimulator { harness in
            let provider = try harness.kapso()
            let call = harness.call(Self.key)
            let all = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: call).executions
            let sample = all[all.count / 2]
            let filters: [(String, ExecutionFilter)] = [
                ("running", ExecutionFilter(statuses: [.running])),
                ("waiting = waiting or handoff", ExecutionFilter(statuses: [.waiting])),
                ("two statuses", ExecutionFilter(statuses: [.succeeded, .failed])),
                ("with statuses Kapso lacks", ExecutionFilter(statuses: [.failed, .queued, .cancelled])),
                ("workflow", ExecutionFilter(workflowID: sample.workflow?.id)),
                ("q on the id", ExecutionFilter(searchTerms: [String(sample.providerExecutionID.prefix(8)).uppercased()])),
                ("q on the prefix", ExecutionFilter(searchTerms: ["kapso:"])),
                ("isTest=false is everything", ExecutionFilter(isTest: false)),
                ("createdAfter", ExecutionFilter(createdAfter: sample.createdAt)),
                ("createdBefore", ExecutionFilter(createdBefore: sample.createdAt)),
                ("both bounds", ExecutionFilter(createdAfter: all[all.count - 5].createdAt, createdBefore: all[4].createdAt)),
            ]
            try await provider.expectWalksShowWhatEachFilterMatches(filters, in: all, limit: 7, call: call)
        }
    }

    @Test func oneMatchingKapsoStatusIsSentUpstreamAndTwoAreFilteredHere() async throws {
        try await withSimulator { harness in
            let provider = try harness.kapso(workflowIDs: harness.simulator.workflowIDs(provider: .kapso, organizationID: Self.organization))
            let call = harness.call(Self.key)
            let createdAfter = try #require(Timestamp(rfc3339: "2025-11-19T00:00:00Z"))
            _ = try await provider.executions(matching: ExecutionFilter(statuses: [.running], createdAfter: createdAfter), after: nil, limit: 10, call: call)
            let targets = harness.log.all.map(\.target)
            #expect(targets.count == 4)
            #expect(targets.allSatisfy { $0.contains("status=running") && $0.contains("created_after=2025-11-19T00%3A00%3A00Z") && $0.contains("limit=15") })
            _ = try await provider.executions(matching: ExecutionFilter(statuses: [.waiting]), after: nil, limit: 10, call: call)
            #expect(harness.log.all.dropFirst(4).allSatisfy { !$0.target.contains("status=") })
        }
    }

    @Test func filtersNoKapsoExecutionCanMatchMakeNoCall() async throws {
        try await withSimulator { harness in
            let provider = try harness.kapso()
            for filter in [
                ExecutionFilter(isTest: true),
                ExecutionFilter(statuses: [.queued, .paused, .cancelled]),
                ExecutionFilter(createdAfter: Timestamp(nanosecondsSinceEpoch: 10), createdBefore: Timestamp(nanosecondsSinceEpoch: 5)),
            ] {
                let page = try await provider.executions(matching: filter, after: nil, limit: 10, call: harness.call(Self.key))
                #expect(page.executions.isEmpty)
                #expect(page.exhausted)
            }
            #expect(harness.simulator.counters(provider: .kapso).total == 0)
            // An unknown workflow costs the workflow list only.
            let page = try await provider.executions(matching: ExecutionFilter(workflowID: "no-such-workflow"), after: nil, limit: 10, call: harness.call(Self.key))
            #expect(page.executions.isEmpty && page.exhausted)
            #expect(harness.simulator.counters(provider: .kapso).count(.list) == 0)
            let configured = try harness.kapso(name: "configured", workflowIDs: ["wf-a"])
            let none = try await configured.executions(matching: ExecutionFilter(workflowID: "wf-b"), after: nil, limit: 10, call: harness.call(Self.key))
            #expect(none.executions.isEmpty && none.exhausted)
            #expect(harness.simulator.counters(provider: .kapso).total == 1)
        }
    }

    @Test func aWorkflowKapsoNoLongerKnowsListsNothing() async throws {
        try await withSimulator { harness in
            let workflows = harness.simulator.workflowIDs(provider: .kapso, organizationID: Self.organization)
            let provider = try harness.kapso(workflowIDs: [workflows[0], "00000000-0000-0000-0000-000000000000"])
            let walked = try await provider.walk(limit: 50, call: harness.call(Self.key))
            #expect(!walked.isEmpty)
            #expect(walked.allSatisfy { $0.workflow?.id == workflows[0] })
        }
    }

    @Test func tiesAtThePositionFollowTheNativeCursor() async throws {
        // One workflow, and more executions at one instant than a page holds.
        try await withSimulator(executions: 6, workflows: 1) { harness in
            let instant = simulatorEpochMilliseconds - 3_600_000
            try harness.simulator.insertExecutions(provider: .kapso, count: 12, organizationID: Self.organization, atUnixMilliseconds: instant)
            try harness.simulator.insertExecutions(provider: .kapso, count: 3, organizationID: Self.organization, atUnixMilliseconds: instant - 1000)
            let provider = try harness.kapso()
            let expected = expectedIDs(harness)
            #expect(expected.count == 21)
            let walked = try await provider.walk(limit: 2, call: harness.call(Self.key))
            #expect(walked.map(\.id) == expected)
            // Pages inside the tie asked Kapso for the next native page.
            #expect(harness.log.all.contains { $0.target.contains("after=") })
        }
    }

    @Test func positionsFromAnotherProviderAreHonoured() async throws {
        try await withSimulator { harness in
            let provider = try harness.kapso()
            let call = harness.call(Self.key)
            let all = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: call).executions
            for index in [0, 7, 20, 39] {
                let pivot = all[index]
                for foreign in [
                    ExecutionSortKey(createdAt: pivot.createdAt, id: "zeta:1"),
                    ExecutionSortKey(createdAt: pivot.createdAt, id: "b3os:exec_1"),
                    // Kaizen's milliseconds between Kapso's whole seconds.
                    ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: pivot.createdAt.nanosecondsSinceEpoch + 500_000_000), id: "kaizen:ex"),
                ] {
                    try await provider.expectPageAfter(ProviderPosition(last: foreign), in: all, limit: 6, call: call)
                }
            }
        }
    }

    @Test func executionsCreatedDuringAWalkNeitherDuplicateNorHideOthers() async throws {
        try await withSimulator { harness in
            let provider = try harness.kapso()
            let original = expectedIDs(harness)
            let walked = try await provider.walk(limit: 3, call: harness.call(Self.key)) { _ in
                try harness.simulator.insertExecutions(provider: .kapso, count: 2, organizationID: Self.organization)
                harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            }
            #expect(walked.map(\.id) == original)
        }
    }

    @Test func detailCarriesEventsAndTheWholeRecord() async throws {
        try await withSimulator { harness in
            let provider = try harness.kapso()
            let call = harness.call(Self.key)
            #expect(provider.joinableFields == [.events])
            let all = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: call).executions
            for listed in all.prefix(8) {
                let detail = try await provider.detail(of: listed.providerExecutionID, call: call)
                let record = await simulatorJSON(
                    harness.simulator.kapso, .get, "/platform/v1/workflow_executions/\(listed.providerExecutionID)", headers: [("X-API-Key", Self.key)]
                )["data"]
                #expect(detail.record == record)
                #expect(detail.events == record?["events"])
                #expect((detail.events?.arrayValue?.count ?? 0) > 0)
                #expect(detail.downloads == nil && detail.startBlock == nil)
                var fromDetail = detail.execution
                fromDetail.raw = listed.raw
                #expect(fromDetail == listed)
            }
            await #expect(throws: ProviderError.notFound) {
                try await provider.detail(of: "3c90c3cc-0d44-4b50-8888-8dd25736052a", call: call)
            }
            // An id is one path segment, whatever it contains.
            await #expect(throws: ProviderError.notFound) {
                try await provider.detail(of: "../workflows", call: call)
            }
        }
    }

    @Test func theWorkflowListAnnouncesItsPages() throws {
        let bare = try KapsoProvider.workflowListPage([
            "data": [["id": "wf-1", "name": "Bot", "last_executed_at": "2026-01-02T03:04:05Z", "execution_count": 7], ["id": "wf-2"], ["id": "wf-1"]],
        ])
        #expect(bare.workflows.map(\.id) == ["wf-1", "wf-2"])
        #expect(bare.workflows.first?.lastExecutedAt == Timestamp(rfc3339: "2026-01-02T03:04:05Z"))
        #expect(bare.workflows.first?.executionCount == 7)
        #expect(bare.workflows.last?.lastExecutedAt == nil && bare.workflows.last?.executionCount == nil)
        #expect(bare.totalPages == 1)
        let paged = try KapsoProvider.workflowListPage(["data": [["id": "wf-3"]], "meta": ["page": 1, "per_page": 1, "total_pages": 4, "total_count": 4]])
        #expect(paged.totalPages == 4)
        #expect(throws: ProviderError.malformedResponse(reason: "a workflow without a string 'id'")) {
            try KapsoProvider.workflowListPage(["data": [["name": "no id"]]])
        }
        #expect(throws: ProviderError.malformedResponse(reason: "the workflow list has no 'data' array")) {
            try KapsoProvider.workflowListPage(["workflows": []])
        }
    }

    @Test func nextCursorIsTakenFromCursorsAndNeverFollowsAnotherHost() {
        #expect(KapsoProvider.nextCursor(["cursors": ["after": "abc"], "next": "https://evil.example/x?after=zzz"], pageIsEmpty: false) == "abc")
        #expect(KapsoProvider.nextCursor(["cursors": ["after": "abc"], "next": nil], pageIsEmpty: false) == nil)
        #expect(KapsoProvider.nextCursor(["next": "https://api.kapso.ai/x?limit=5&after=eyJ9"], pageIsEmpty: false) == "eyJ9")
        #expect(KapsoProvider.nextCursor(["cursors": ["after": "abc"], "next": "n"], pageIsEmpty: true) == nil)
        #expect(KapsoProvider.nextCursor(nil, pageIsEmpty: false) == nil)
    }
}
