import GatewayHTTP
import GatewayJSON
@testable import GatewayProviders
import ProviderSimulator
import Testing

@Suite struct B3OSProviderTests {
    static let key = DemoCredential.b3os
    static let organization = "org_demo_acme"

    static let statusTable: [String: ExecutionStatus] = [
        "awaiting_payment": .waiting, "payment_confirmed": .queued, "workflow_queued": .queued,
        "workflow_running": .running, "workflow_waiting": .waiting, "workflow_succeeded": .succeeded,
        "workflow_failed": .failed, "workflow_cancelled": .cancelled,
    ]

    func expectedIDs(_ harness: SimulatorHarness, organization: String = organization) -> [String] {
        harness.simulator.executionIDs(provider: .b3os, organizationID: organization).map { "b3os:" + $0 }
    }

    func listCalls(_ harness: SimulatorHarness) -> Int { harness.simulator.counters(provider: .b3os).count(.list) }

    @Test func mapsEveryFieldOfEveryListItem() async throws {
        try await withSimulator { harness in
            let provider = try harness.b3os()
            let page = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: harness.call(Self.key))
            let raw = await simulatorJSON(harness.simulator.b3os, .get, "/v1/executions?limit=100", headers: [("Authorization", "Bearer \(Self.key)")])["data"]?["items"]?.arrayValue ?? []
            #expect(raw.count == 40)
            #expect(page.executions.count == 40)
            #expect(page.exhausted)
            var seenNative = Set<String>()
            for (offset, item) in raw.enumerated() {
                let object = try #require(item.objectValue)
                let id = try #require(object["id"]?.stringValue)
                let execution = try #require(page.executions.first { $0.providerExecutionID == id })
                #expect(execution.id == "b3os:" + id)
                #expect(execution.createdAt == object["createdAt"]?.stringValue.flatMap { Timestamp(rfc3339: $0) })
                let startedAt = object["startedAt"]?.stringValue.flatMap { Timestamp(rfc3339: $0) }
                let finishedAt = object["finishedAt"]?.stringValue.flatMap { Timestamp(rfc3339: $0) }
                #expect(execution.startedAt == startedAt)
                #expect(execution.endedAt == finishedAt)
                if let startedAt, let finishedAt {
                    #expect(execution.durationMs == (finishedAt.nanosecondsSinceEpoch - startedAt.nanosecondsSinceEpoch) / 1_000_000)
                } else {
                    #expect(execution.durationMs == nil)
                }
                let native = try #require(object["status"]?.stringValue)
                seenNative.insert(native)
                #expect(execution.providerStatus == native)
                #expect(execution.status == Self.statusTable[native])
                if ["awaiting_payment", "workflow_queued"].contains(native) { #expect(execution.startedAt == nil) }
                #expect(execution.workflow == WorkflowReference(id: object["workflowId"]?.stringValue ?? "?", name: nil))
                #expect(execution.name == nil && execution.isTest == nil && execution.attempts == nil)
                for member in try #require(object["requestPayload"]?.objectValue) {
                    if let text = member.value.stringValue { #expect(execution.searchableValues.contains(text)) }
                    if let number = member.value.integerValue { #expect(execution.searchableValues.contains(String(number))) }
                }
                #expect(execution.sourceOffset == offset)
                #expect(execution.raw == item)
            }
            #expect(seenNative == Set(Self.statusTable.keys))
        }
    }

    @Test func walkingWithOffsetsYieldsEachExecutionOnceInOrder() async throws {
        try await withSimulator(executions: 110) { harness in
            let provider = try harness.b3os()
            let call = harness.call(Self.key)
            let expected = expectedIDs(harness)
            for limit in [1, 100] {
                let walked = try await provider.walk(limit: limit, call: call)
                #expect(walked.map(\.id) == expected, "limit \(limit)")
            }
        }
    }

    @Test func rowsShiftedByNewExecutionsBetweenPagesAreNeitherRepeatedNorSkipped() async throws {
        try await withSimulator(executions: 150) { harness in
            let provider = try harness.b3os()
            let original = expectedIDs(harness)
            let walked = try await provider.walk(limit: 9, call: harness.call(Self.key)) { pageNumber in
                // Up to 37 new rows on top: every offset moves down by more than the overlap.
                try harness.simulator.insertExecutions(provider: .b3os, count: 1 + pageNumber % 4 * 12, organizationID: Self.organization)
                harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            }
            #expect(walked.map(\.id) == original)
        }
    }

    @Test func executionsInsertedBehindThePositionAppearInTheirPlace() async throws {
        try await withSimulator(executions: 120) { harness in
            let provider = try harness.b3os()
            let original = expectedIDs(harness)
            var late: [String] = []
            let walked = try await provider.walk(limit: 10, call: harness.call(Self.key)) { pageNumber in
                if pageNumber == 1 {
                    // Far back in time: they land after the position and shift the rows between.
                    let inserted = try harness.simulator.insertExecutions(
                        provider: .b3os, count: 15, organizationID: Self.organization, atUnixMilliseconds: simulatorEpochMilliseconds - 500 * 86_400_000
                    )
                    late = inserted.map { "b3os:" + $0.id }
                }
                harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            }
            #expect(Set(walked.map(\.id)).count == walked.count)
            #expect(isStrictlyOrdered(walked))
            #expect(walked.map(\.id).filter { !late.contains($0) } == original)
            #expect(Set(walked.map(\.id).suffix(15)) == Set(late))
        }
    }

    @Test func aWrongOffsetHintIsOnlyAHint() async throws {
        try await withSimulator(executions: 260) { harness in
            let provider = try harness.b3os()
            let call = harness.call(Self.key)
            let all = try await provider.walk(limit: 100, call: call)
            let pivot = all[120]
            let expected = all[121...].prefix(8).map(\.id)
            // Too far (as after deletions), far beyond the end, too early, and exact.
            for hint in [200, 5_000, 0, 60, 121, Int.max, Int.min] {
                let page = try await provider.executions(
                    matching: ExecutionFilter(), after: ProviderPosition(last: pivot.sortKey, offsetHint: hint), limit: 8, call: call
                )
                #expect(page.executions.map(\.id) == Array(expected), "hint \(hint)")
                #expect(!page.exhausted)
            }
        }
    }

    @Test func withoutAHintTheBoundaryIsFoundInFewCalls() async throws {
        try await withSimulator(executions: 1_000) { harness in
            let provider = try harness.b3os()
            let call = harness.call(Self.key)
            let ids = expectedIDs(harness)
            let instants = try await provider.walk(limit: 100, call: call)
            #expect(instants.map(\.id) == ids)
            harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            for index in [3, 250, 777, 950, 999] {
                let before = listCalls(harness)
                // The position of another provider, just after this B3OS execution.
                let foreign = ExecutionSortKey(createdAt: instants[index].createdAt, id: "a:0")
                let page = try await provider.executions(matching: ExecutionFilter(), after: ProviderPosition(last: foreign), limit: 5, call: call)
                let expected = instants.filter { foreign.precedes($0.sortKey) }.prefix(5).map(\.id)
                #expect(page.executions.map(\.id) == Array(expected), "index \(index)")
                // Galloping and halving, not a scan of up to 11 windows.
                #expect(listCalls(harness) - before <= 9, "index \(index)")
                harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            }
        }
    }

    @Test func everyFilterIsAppliedInTheGateway() async throws {
        try await withSimulator(executions: 90) { harness in
            let provider = try harness.b3os()
            let call = harness.call(Self.key)
            let all = try await provider.walk(limit: 100, call: call)
            let sample = all[all.count / 2]
            let asset = try #require(sample.raw["requestPayload"]?["asset"]?.stringValue)
            let filters: [(String, ExecutionFilter)] = [
                ("queued = payment_confirmed or workflow_queued", ExecutionFilter(statuses: [.queued])),
                ("waiting and cancelled", ExecutionFilter(statuses: [.waiting, .cancelled])),
                ("workflow", ExecutionFilter(workflowID: sample.workflow?.id)),
                ("q on requestPayload", ExecutionFilter(searchTerms: [asset.lowercased()])),
                ("q on the id", ExecutionFilter(searchTerms: [String(sample.providerExecutionID.suffix(7))])),
                ("isTest=false", ExecutionFilter(isTest: false)),
                ("createdAfter", ExecutionFilter(createdAfter: sample.createdAt)),
                ("createdBefore", ExecutionFilter(createdBefore: sample.createdAt)),
                ("both", ExecutionFilter(statuses: [.succeeded], createdAfter: all[70].createdAt, createdBefore: all[10].createdAt)),
            ]
            try await provider.expectWalksShowWhatEachFilterMatches(filters, in: all, limit: 10, call: call)
        }
    }

    @Test func createdAfterStopsTheScanAndFiltersB3OSCannotMatchMakeNoCall() async throws {
        try await withSimulator(executions: 400) { harness in
            let provider = try harness.b3os()
            let call = harness.call(Self.key)
            let all = try await provider.walk(limit: 100, call: call)
            harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            let before = listCalls(harness)
            let page = try await provider.executions(matching: ExecutionFilter(createdAfter: all[30].createdAt), after: nil, limit: 100, call: call)
            #expect(page.executions.map(\.id) == all.filter { $0.createdAt >= all[30].createdAt }.map(\.id))
            #expect(page.exhausted)
            #expect(listCalls(harness) - before == 1)

            let total = harness.simulator.counters(provider: .b3os).total
            for filter in [
                ExecutionFilter(isTest: true), ExecutionFilter(statuses: [.paused]),
                ExecutionFilter(createdAfter: all[10].createdAt, createdBefore: all[20].createdAt),
            ] {
                let empty = try await provider.executions(matching: filter, after: nil, limit: 10, call: call)
                #expect(empty.executions.isEmpty && empty.exhausted)
            }
            #expect(harness.simulator.counters(provider: .b3os).total == total)
        }
    }

    @Test func positionsFromAnotherProviderAreHonoured() async throws {
        try await withSimulator(executions: 120) { harness in
            let provider = try harness.b3os()
            let call = harness.call(Self.key)
            let all = try await provider.walk(limit: 100, call: call)
            for index in [0, 45, 99, 119] {
                let pivot = all[index]
                for foreign in [
                    ExecutionSortKey(createdAt: pivot.createdAt, id: "zz:1"),
                    ExecutionSortKey(createdAt: pivot.createdAt, id: "a:1"),
                    ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: pivot.createdAt.nanosecondsSinceEpoch - 1), id: "kaizen:x"),
                ] {
                    try await provider.expectPageAfter(ProviderPosition(last: foreign, offsetHint: index), in: all, limit: 4, call: call)
                }
            }
        }
    }

    @Test func theOrganisationHeaderSelectsTheOrganisation() async throws {
        try await withSimulator { harness in
            let globex = try harness.b3os(name: "b3os", organizationID: "org_demo_globex")
            let walked = try await globex.walk(limit: 25, call: harness.call(Self.key))
            #expect(walked.map(\.id) == expectedIDs(harness, organization: "org_demo_globex"))
            #expect(harness.log.all.allSatisfy { $0.headers["X-Org-ID"] == "org_demo_globex" })

            let acmeOnly = try harness.b3os(name: "acme-only", organizationID: "org_demo_acme")
            await #expect(throws: ProviderError.credentialRejected(status: 403)) {
                try await acmeOnly.executions(matching: ExecutionFilter(), after: nil, limit: 5, call: harness.call(DemoCredential.b3osSecondOrganization))
            }
        }
    }

    @Test func detailCarriesEventsAndTheWholeRecord() async throws {
        try await withSimulator { harness in
            let provider = try harness.b3os()
            let call = harness.call(Self.key)
            #expect(provider.joinableFields == [.events])
            let all = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: call).executions
            for listed in all.prefix(8) {
                let detail = try await provider.detail(of: listed.providerExecutionID, call: call)
                let data = await simulatorJSON(
                    harness.simulator.b3os, .get, "/v1/executions/\(listed.providerExecutionID)", headers: [("Authorization", "Bearer \(Self.key)")]
                )["data"]
                #expect(detail.record == data)
                #expect(detail.events == data?["events"])
                #expect(detail.events?.arrayValue != nil)
                #expect(detail.downloads == nil && detail.startBlock == nil)
                var fromDetail = detail.execution
                fromDetail.sourceOffset = listed.sourceOffset
                #expect(fromDetail == listed)
            }
            await #expect(throws: ProviderError.notFound) {
                try await provider.detail(of: "exec_UNKNOWN", call: call)
            }
            await #expect(throws: ProviderError.notFound) {
                try await provider.detail(of: "a/../../v1/executions?limit=1", call: call)
            }
        }
    }
}
