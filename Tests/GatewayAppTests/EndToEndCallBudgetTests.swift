import ExecutionsAPI
import GatewayApp
import GatewayConfig
import GatewayHTTP
import GatewayJSON
import ProviderSimulator
import Testing

/// The per-client budget of upstream calls through the whole gateway: `no-cache` cannot make a
/// client cost more than its budget, the cache still answers, and a call nothing can replace is a
/// `429` whose headers describe that budget.
@Suite struct EndToEndCallBudgetTests {
    @Test func aClientOverItsCallBudgetGetsCachedDataOrA429NamingTheBudget() async throws {
        let harness = try await GatewayHarness { configuration in
            // Two calls, then one more every 30 s: far beyond the test's duration.
            configuration.rateLimit.default.upstreamCallsPerMinute = 2
        }
        defer { Task { await harness.stop() } }
        let noCache: HTTPHeaders = ["Cache-Control": "no-cache"]
        // The budget gives one call back every 30 s: a run so slowed by a loaded machine that it
        // took that long has legitimately had a call returned, and proves nothing more from there.
        let started = ContinuousClock.now
        func budgetMayHaveRefilled() -> Bool { ContinuousClock.now - started > .seconds(28) }
        let first = try await harness.get("/executions?provider=kaizen&limit=3", headers: noCache)
        let second = try await harness.get("/executions?provider=kaizen&limit=3", headers: noCache)
        #expect(first.status == 200 && second.status == 200)
        #expect(harness.simulator.counters(provider: .kaizen).count(.list) == 2)

        let third = try await harness.get("/executions?provider=kaizen&limit=3", headers: noCache)
        #expect(third.status == 200)
        #expect(third.ids == first.ids)
        if budgetMayHaveRefilled() { return }
        #expect(harness.simulator.counters(provider: .kaizen).count(.list) == 2)

        let id = try #require(first.ids.first)
        let refused = try await harness.get("/executions/\(id)")
        if budgetMayHaveRefilled() { return }
        #expect(refused.status == 429)
        #expect(refused.json["type"]?.stringValue == "https://executions-gateway.dev/problems/rate-limited")
        #expect(refused.json["detail"]?.stringValue?.contains("upstreamCallsPerMinute") == true)
        let retryAfter = try #require(refused.headers["Retry-After"].flatMap { Int($0) })
        #expect((1...30).contains(retryAfter))
        #expect(refused.json["retryAfter"]?.integerValue.map(Int.init) == retryAfter)
        #expect(refused.headers["RateLimit-Limit"] == "2")
        #expect(refused.headers["RateLimit-Remaining"] == "0")
        #expect(harness.simulator.counters(provider: .kaizen).count(.detail) == 0)
    }
}
