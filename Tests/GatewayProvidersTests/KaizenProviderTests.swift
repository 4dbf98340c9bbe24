import GatewayHTTP
import GatewayJSON
@testable import GatewayProviders
import ProviderSimulator
import Testing

@Suite struct KaizenProviderTests {
    static let key = DemoCredential.kaizen

    /// The simulator's own list, unfiltered, as Kaizen sends it.
    static func rawList(_ harness: SimulatorHarness, key: String = key) async -> [JSONValue] {
        await simulatorJSON(harness.simulator.kaizen, .post, "/executions/list", headers: [("Authorization", "Bearer \(key)")], body: "{}")["executions"]?.arrayValue ?? []
    }

    static let statusTable: [String: ExecutionStatus] = [
        "Enqueued": .queued, "InProgress": .running, "Paused": .paused, "Completed": .succeeded, "Failed": .failed,
    ]

    @Test func mapsEveryFieldOfEveryListItem() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen(name: "kz-eu")
            let page = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: harness.call(Self.key))
            let raw = await Self.rawList(harness)
            #expect(raw.count == 40)
            #expect(page.executions.count == 40)
            #expect(page.exhausted)
            #expect(isStrictlyOrdered(page.executions))
            var seenStatuses = Set<ExecutionStatus>()
            for item in raw {
                let object = try #require(item.objectValue)
                let id = try #require(object["id"]?.stringValue)
                let execution = try #require(page.executions.first { $0.providerExecutionID == id })
                #expect(execution.id == "kz-eu:" + id)
                #expect(execution.provider == "kz-eu")
                let startTime = try #require(object["startTime"]?.stringValue.flatMap { Timestamp(rfc3339: $0) })
                #expect(execution.createdAt == startTime)
                #expect(execution.startedAt == startTime)
                let workflow = try #require(object["workflow"]?.objectValue)
                #expect(execution.workflow == WorkflowReference(id: workflow["id"]?.stringValue ?? "?", name: workflow["name"]?.stringValue))
                #expect(execution.name == object["name"]?.stringValue)
                let native = try #require(object["status"]?.stringValue)
                #expect(execution.providerStatus == native)
                #expect(execution.status == Self.statusTable[native])
                if let status = execution.status { seenStatuses.insert(status) }
                if native == "Completed" || native == "Failed" {
                    let endTime = try #require(object["endTime"]?.stringValue.flatMap { Timestamp(rfc3339: $0) })
                    #expect(execution.endedAt == endTime)
                    #expect(execution.durationMs == object["durationMs"]?.integerValue)
                    #expect(execution.durationMs == (endTime.nanosecondsSinceEpoch - startTime.nanosecondsSinceEpoch) / 1_000_000)
                } else {
                    #expect(execution.endedAt == nil)
                    #expect(execution.durationMs == nil)
                }
                #expect(execution.isTest == object["isTest"]?.boolValue)
                #expect(execution.attempts == object["attempts"]?.integerValue)
                #expect(execution.raw == item)
                #expect(execution.sourceOffset == nil)
                // Every string parameter, however deeply nested, is searchable.
                let params = try #require(object["params"]?.objectValue)
                for member in params {
                    switch member.value {
                    case .string(let text): #expect(execution.searchableValues.contains(text))
                    case .bool(let flag): #expect(execution.searchableValues.contains(flag ? "true" : "false"))
                    case .object(let nested):
                        if let note = nested["note"]?.stringValue { #expect(execution.searchableValues.contains(note)) }
                        if let retries = nested["retries"]?.integerValue { #expect(execution.searchableValues.contains(String(retries))) }
                    default: break
                    }
                }
                if params.count == 0 { #expect(execution.searchableValues.isEmpty) }
            }
            #expect(seenStatuses == Set(Self.statusTable.values))
        }
    }

    @Test func numbersInParametersAreSearchableAsJSONWritesThem() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let all = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: harness.call(Self.key)).executions
            let withAmount = try #require(all.first { $0.raw["params"]?["amount"]?.doubleValue != nil })
            let amount = try #require(withAmount.raw["params"]?["amount"])
            var writer = JSONWriter()
            writer.write(amount)
            #expect(withAmount.searchableValues.contains(String(decoding: writer.bytes, as: UTF8.self)))
        }
    }

    @Test func unknownStatusMapsToNullAndKeepsTheProviderStatus() throws {
        let item: JSONValue = [
            "id": "ex_new", "workflow": ["id": "wf_1", "name": "Invoice sync"], "startTime": "2026-11-20T10:00:00.000Z",
            "status": "Rescheduled", "params": [:], "name": nil, "attempts": 2, "isTest": false,
            "endTime": "2026-11-20T10:05:00.000Z",
        ]
        let execution = try KaizenProvider.execution(from: item, provider: "kaizen")
        #expect(execution.status == nil)
        #expect(execution.providerStatus == "Rescheduled")
        #expect(execution.endedAt == nil)
        #expect(execution.attempts == 2)
        #expect(!ExecutionFilter(statuses: Set(ExecutionStatus.allCases)).matches(execution))
        #expect(ExecutionFilter().matches(execution))
    }

    @Test func recordsWithoutIdOrStartTimeAreMalformedAnswers() {
        #expect(throws: ProviderError.malformedResponse(reason: "an execution without a string 'id'")) {
            try KaizenProvider.execution(from: ["startTime": "2026-11-20T10:00:00Z"], provider: "kaizen")
        }
        #expect(throws: ProviderError.malformedResponse(reason: "execution 'ex_1' has no RFC 3339 'startTime'")) {
            try KaizenProvider.execution(from: ["id": "ex_1", "startTime": "yesterday"], provider: "kaizen")
        }
        #expect(throws: ProviderError.malformedResponse(reason: "an execution is not a JSON object")) {
            try KaizenProvider.execution(from: "ex_1", provider: "kaizen")
        }
    }

    // MARK: - Filters

    static func filters(workflowID: String, paramValue: String, idFragment: String, instant: Timestamp) -> [(String, ExecutionFilter)] {
        [
            ("one status", ExecutionFilter(statuses: [.succeeded])),
            ("two statuses", ExecutionFilter(statuses: [.running, .failed])),
            ("status with one Kaizen counterpart", ExecutionFilter(statuses: [.paused, .waiting])),
            ("workflow", ExecutionFilter(workflowID: workflowID)),
            ("q on a parameter", ExecutionFilter(searchTerms: [paramValue.uppercased()])),
            ("q on the id", ExecutionFilter(searchTerms: [idFragment])),
            ("q OR-ed", ExecutionFilter(searchTerms: [idFragment, "no-such-value"])),
            ("q on the provider prefix", ExecutionFilter(searchTerms: ["aizen:"])),
            ("isTest", ExecutionFilter(isTest: true)),
            ("not isTest", ExecutionFilter(isTest: false)),
            ("createdAfter", ExecutionFilter(createdAfter: instant)),
            ("createdBefore", ExecutionFilter(createdBefore: instant)),
            ("all together", ExecutionFilter(statuses: [.succeeded, .failed], createdBefore: instant, isTest: false)),
        ]
    }

    @Test func everyFilterMeansWhatTheSharedFilterSays() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let call = harness.call(Self.key)
            let all = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: call).executions
            let sample = all[all.count / 2]
            let customers = all.compactMap { $0.raw["params"]?["customer"]?.stringValue }
            let paramValue = try #require(customers.first)
            let fragment = String(sample.providerExecutionID.dropFirst(3).prefix(6))
            let filters = Self.filters(
                workflowID: try #require(sample.workflow?.id), paramValue: paramValue, idFragment: fragment, instant: sample.createdAt
            )
            try await provider.expectWalksShowWhatEachFilterMatches(filters, in: all, limit: 6, call: call)
        }
    }

    @Test func filtersArePushedUpstreamWhereKaizenHasThem() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let after = try #require(Timestamp(rfc3339: "2025-11-19T00:00:00Z"))
            let before = try #require(Timestamp(rfc3339: "2025-11-20T09:00:00.5Z"))
            _ = try await provider.executions(
                matching: ExecutionFilter(statuses: [.running], workflowID: "wf_x", createdAfter: after, createdBefore: before, searchTerms: ["INV"], isTest: false),
                after: nil, limit: 10, call: harness.call(Self.key)
            )
            let sent = try JSONParser.parse(try #require(harness.log.last).body)
            #expect(sent == [
                "status": "InProgress", "workflowId": "wf_x", "search": ["INV"], "isTest": false,
                "fromTs": "2025-11-19T00:00:00Z", "toTs": "2025-11-20T09:00:00.5Z",
            ])
            // Several statuses, or a term that could match the "kaizen:" prefix: applied here only.
            _ = try await provider.executions(
                matching: ExecutionFilter(statuses: [.running, .queued], searchTerms: ["zen:ex"]), after: nil, limit: 10, call: harness.call(Self.key)
            )
            #expect(try JSONParser.parse(try #require(harness.log.last).body) == [:])
        }
    }

    @Test func filtersNoKaizenExecutionCanMatchMakeNoCall() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            for filter in [
                ExecutionFilter(statuses: [.waiting, .cancelled]),
                ExecutionFilter(statuses: []),
                ExecutionFilter(createdAfter: Timestamp(nanosecondsSinceEpoch: 10), createdBefore: Timestamp(nanosecondsSinceEpoch: 5)),
            ] {
                let page = try await provider.executions(matching: filter, after: nil, limit: 10, call: harness.call(Self.key))
                #expect(page.executions.isEmpty)
                #expect(page.exhausted)
                #expect(page.cache == .hit)
            }
            #expect(harness.simulator.counters(provider: .kaizen).total == 0)
        }
    }

    // MARK: - Paging

    @Test func walkingEveryPageYieldsEachExecutionOnceInOrderFromOneUpstreamCall() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let call = harness.call(Self.key)
            let expected = harness.simulator.executionIDs(provider: .kaizen, organizationID: "org_kz_acme").map { "kaizen:" + $0 }
            for limit in [1, 3, 7, 40, 100] {
                let walked = try await provider.walk(limit: limit, call: call)
                #expect(walked.map(\.id) == expected, "limit \(limit)")
            }
            // The list request does not depend on the position: one call served every page.
            #expect(harness.simulator.counters(provider: .kaizen).count(.list) == 1)
        }
    }

    @Test func positionsFromAnotherProviderAreHonoured() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let call = harness.call(Self.key)
            let all = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: call).executions
            for index in [0, 5, 17, 39] {
                let pivot = all[index]
                for foreign in [
                    ExecutionSortKey(createdAt: pivot.createdAt, id: "b3os:zzz"),  // same instant, id after "kaizen:"
                    ExecutionSortKey(createdAt: pivot.createdAt, id: "apple:1"),  // same instant, id before
                    ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: pivot.createdAt.nanosecondsSinceEpoch + 1), id: "kapso:x"),
                ] {
                    try await provider.expectPageAfter(ProviderPosition(last: foreign), in: all, limit: 5, call: call)
                }
            }
        }
    }

    @Test func executionsCreatedDuringAWalkNeitherDuplicateNorHideOthers() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let call = harness.call(Self.key)
            let original = harness.simulator.executionIDs(provider: .kaizen, organizationID: "org_kz_acme").map { "kaizen:" + $0 }
            var insertedOld: [String] = []
            let walked = try await provider.walk(limit: 4, call: call) { pageNumber in
                // New executions now (before the position: never shown) and one back in time
                // (after the position: may be shown, in its place); the list cache expires.
                try harness.simulator.insertExecutions(provider: .kaizen, count: 2, organizationID: "org_kz_acme")
                if pageNumber == 2 {
                    let inserted = try harness.simulator.insertExecutions(
                        provider: .kaizen, organizationID: "org_kz_acme", atUnixMilliseconds: simulatorEpochMilliseconds - 400 * 86_400_000
                    )
                    insertedOld += inserted.map { "kaizen:" + $0.id }
                }
                harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            }
            #expect(Set(walked.map(\.id)).count == walked.count)
            #expect(isStrictlyOrdered(walked))
            #expect(walked.map(\.id).filter { !insertedOld.contains($0) } == original)
            #expect(walked.map(\.id).suffix(insertedOld.count) == insertedOld[...])
            #expect(harness.simulator.counters(provider: .kaizen).count(.list) > 1)
        }
    }

    // MARK: - Detail

    @Test func detailJoinsDownloadsAndStartBlockAndKeepsTheRecord() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let call = harness.call(Self.key)
            #expect(provider.joinableFields == [.downloads, .startBlock])
            let all = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: call).executions
            for listed in all.prefix(12) {
                let detail = try await provider.detail(of: listed.providerExecutionID, call: call)
                let record = await simulatorJSON(
                    harness.simulator.kaizen, .post, "/executions/get", headers: [("Authorization", "Bearer \(Self.key)")],
                    body: #"{"id":"\#(listed.providerExecutionID)"}"#
                )["execution"]
                #expect(detail.record == record)
                #expect(detail.downloads == record?["downloads"])
                #expect(detail.downloads?["files"]?.arrayValue != nil)
                #expect(detail.startBlock == record?["startBlock"])
                #expect(detail.events == nil)
                var fromDetail = detail.execution
                fromDetail.raw = listed.raw
                fromDetail.searchableValues = listed.searchableValues
                #expect(fromDetail == listed)
                #expect(detail.cache == .miss)
            }
            await #expect(throws: ProviderError.notFound) {
                try await provider.detail(of: "ex_does_not_exist", call: call)
            }
        }
    }

    @Test func detailFreshnessDependsOnWhetherTheExecutionFinished() async throws {
        try await withSimulator { harness in
            let provider = try harness.kaizen()
            let call = harness.call(Self.key)
            let all = try await provider.executions(matching: ExecutionFilter(), after: nil, limit: 100, call: call).executions
            let finished = try #require(all.first { $0.status == .succeeded })
            let running = try #require(all.first { $0.status == .running })
            _ = try await provider.detail(of: finished.providerExecutionID, call: call)
            _ = try await provider.detail(of: running.providerExecutionID, call: call)
            harness.clocks.advance(milliseconds: SimulatorHarness.activeDetailTTLMilliseconds + 1)
            #expect(try await provider.detail(of: finished.providerExecutionID, call: call).cache == .hit)
            #expect(try await provider.detail(of: running.providerExecutionID, call: call).cache == .miss)
            #expect(harness.simulator.counters(provider: .kaizen).count(.detail) == 3)
        }
    }
}
