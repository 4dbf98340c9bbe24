import ExecutionsAPI
import GatewayJSON
@testable import GatewayProviders
import ProviderSimulator
import Testing

/// The three adapters behind the real unified layer (`ExecutionsService`), against the simulator:
/// every page's positions are global boundaries, mostly another provider's executions.
@Suite struct UnifiedWalkTests {
    struct Walk {
        var ids: [String] = []
        var pages = 0
        var allComplete = true
        var statuses: [String] = []
    }

    static func service(_ harness: SimulatorHarness) throws -> ExecutionsService {
        ExecutionsService(
            providers: [
                ProviderBinding(provider: try harness.kaizen(), credential: UpstreamCredential(secret: DemoCredential.kaizen)),
                ProviderBinding(provider: try harness.kapso(), credential: UpstreamCredential(secret: DemoCredential.kapso)),
                ProviderBinding(provider: try harness.b3os(), credential: UpstreamCredential(secret: DemoCredential.b3os)),
            ],
            cursorSecret: "unified-walk-test-secret", now: { harness.clocks.now() }
        )
    }

    static func walk(
        _ service: ExecutionsService, query: [(name: String, value: String)], between: (Int) async throws -> Void = { _ in }
    ) async throws -> Walk {
        var walk = Walk()
        var cursor: String?
        repeat {
            var items = cursor.map { [(name: "cursor", value: $0)] } ?? query
            if cursor != nil { items += query.filter { $0.name == "limit" } }
            let answer = try await service.list(
                items, client: .anonymous, facts: RequestFacts(requestID: "req-walk-\(walk.pages)", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", bypassCache: false)
            ).get()
            let document = try JSONParser.parse(answer.body)
            walk.ids += (document["data"]?.arrayValue ?? []).compactMap { $0["id"]?.stringValue }
            walk.allComplete = walk.allComplete && document["complete"] == .bool(true)
            cursor = document["page"]?["nextCursor"]?.stringValue
            walk.pages += 1
            if cursor != nil { try await between(walk.pages) }
        } while cursor != nil && walk.pages < 1_000
        return walk
    }

    /// Every execution of the three simulated organisations, in the unified order.
    static func expected(_ harness: SimulatorHarness, filter: ExecutionFilter = ExecutionFilter()) async throws -> [String] {
        let call = { (key: String) in harness.call(key) }
        var all = try await harness.kaizen().walk(limit: 100, call: call(DemoCredential.kaizen))
        all += try await harness.kapso().walk(limit: 100, call: call(DemoCredential.kapso))
        all += try await harness.b3os().walk(limit: 100, call: call(DemoCredential.b3os))
        return all.filter(filter.matches).sorted { $0.sortKey.precedes($1.sortKey) }.map(\.id)
    }

    @Test(arguments: [1, 6, 25])
    func aWalkAcrossAllProvidersShowsEachExecutionOnceInOrder(limit: Int) async throws {
        try await withSimulator(executions: 30, workflows: 3) { harness in
            let expected = try await Self.expected(harness)
            #expect(expected.count == 90)
            let walk = try await Self.walk(try Self.service(harness), query: [("limit", String(limit))])
            #expect(walk.ids == expected)
            #expect(walk.allComplete)
        }
    }

    @Test func executionsCreatedDuringTheWalkDoNotDisturbIt() async throws {
        try await withSimulator(executions: 30, workflows: 3) { harness in
            let expected = try await Self.expected(harness)
            let walk = try await Self.walk(try Self.service(harness), query: [("limit", "7")]) { _ in
                for provider in SimulatedProvider.allCases {
                    try harness.simulator.insertExecutions(provider: provider, count: 3)
                }
                harness.clocks.advance(milliseconds: SimulatorHarness.listTTLMilliseconds + 1)
            }
            #expect(walk.ids == expected)
        }
    }

    @Test func filtersHoldAcrossProviders() async throws {
        try await withSimulator(executions: 30, workflows: 3) { harness in
            for (query, filter) in [
                ([("status", "succeeded,waiting")], ExecutionFilter(statuses: [.succeeded, .waiting])),
                ([("status", "running")], ExecutionFilter(statuses: [.running])),
                ([("isTest", "false")], ExecutionFilter(isTest: false)),
                ([("isTest", "true")], ExecutionFilter(isTest: true)),
            ] as [([(name: String, value: String)], ExecutionFilter)] {
                let expected = try await Self.expected(harness, filter: filter)
                #expect(!expected.isEmpty)
                let walk = try await Self.walk(try Self.service(harness), query: query + [("limit", "9")])
                #expect(walk.ids == expected, "\(query)")
            }
        }
    }
}
