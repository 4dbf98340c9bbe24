import ExecutionsAPI
import GatewayApp
import GatewayConfig
import GatewayHTTP
import GatewayJSON
import GatewayProviders
import ProviderSimulator
import Testing

/// Cache, coalescing, stale-if-error, Retry-After, joins and failure modes end to end (docs/api.md, docs/configuration.md).
@Suite(.serialized) struct EndToEndResilienceTests {
    @Test func concurrentIdenticalRequestsMakeOneUpstreamCallPerProvider() async throws {
        let harness = try await GatewayHarness { configuration in
            configuration.rateLimit.default = ClientRateLimit(requestsPerSecond: 10_000, burst: 10_000)
            // Coalescing is the point, not freshness: no refresh may become due on a loaded machine.
            configuration.cache.listTTL = .seconds(600)
        }
        defer { Task { await harness.stop() } }
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<200 {
                group.addTask { try await harness.get("/executions?limit=20&provider=kaizen,b3os").status }
            }
            var statuses: [Int] = []
            for try await status in group { statuses.append(status) }
            return statuses
        }
        #expect(statuses.allSatisfy { $0 == 200 })
        #expect(harness.simulator.counters(provider: .kaizen).count(.list) == 1)
        #expect(harness.simulator.counters(provider: .b3os).count(.list) == 1)
    }

    @Test func staleDataIsServedWithinItsWindowWhenTheUpstreamFails() async throws {
        let harness = try await GatewayHarness { configuration in
            configuration.cache.listTTL = .milliseconds(50)
            configuration.cache.staleIfError = .milliseconds(60_000)
        }
        defer { Task { await harness.stop() } }
        let fresh = try await harness.get("/executions?provider=kaizen&limit=5")
        try await Task.sleep(nanoseconds: 120_000_000)
        harness.simulator.setFault(SimulatedFault(.status(code: 503, retryAfterSeconds: nil)), provider: .kaizen)
        let stale = try await harness.get("/executions?provider=kaizen&limit=5")
        #expect(stale.status == 200)
        #expect(stale.ids == fresh.ids)
        #expect(stale.headers["Cache-Status"]?.contains("detail=stale") == true)
        #expect(stale.json["providers"]?.arrayValue?.first?["cache"] == "stale")
        #expect(stale.json["complete"] == true)
    }

    @Test func staleIsNotServedAfterItsWindow() async throws {
        let harness = try await GatewayHarness { configuration in
            configuration.cache.listTTL = .milliseconds(20)
            configuration.cache.staleIfError = .milliseconds(30)
        }
        defer { Task { await harness.stop() } }
        _ = try await harness.get("/executions?provider=kaizen&limit=5")
        try await Task.sleep(nanoseconds: 150_000_000)
        harness.simulator.setFault(SimulatedFault(.status(code: 500, retryAfterSeconds: nil)), provider: .kaizen)
        let failed = try await harness.get("/executions?provider=kaizen&limit=5")
        #expect(failed.json["complete"] == false)
        #expect(failed.json["providers"]?.arrayValue?.first?["status"] == "error")
    }

    @Test func retryAfterPausesTheProviderForThatCredential() async throws {
        let harness = try await GatewayHarness { configuration in configuration.cache.listTTL = .milliseconds(1) }
        defer { Task { await harness.stop() } }
        harness.simulator.setFault(SimulatedFault(.rateLimited(retryAfterSeconds: 30), calls: 1...1), provider: .b3os)
        let limited = try await harness.get("/executions?provider=b3os&limit=5&allowPartial=false")
        #expect(limited.status == 502)
        let callsAfterPause = harness.simulator.counters(provider: .b3os).total
        // Paused: no further call to B3OS with that credential, the provider fails at once.
        let paused = try await harness.get("/executions?provider=b3os&limit=5")
        #expect(paused.json["providers"]?.arrayValue?.first?["error"]?["retryAfter"]?.integerValue.map { $0 >= 1 && $0 <= 30 } == true)
        #expect(harness.simulator.counters(provider: .b3os).total == callsAfterPause)
        // Another credential (another tenant) is not paused.
        let otherTenant = try await harness.get("/executions?provider=b3os&limit=5", key: GatewayHarness.otherTenantKey)
        #expect(otherTenant.json["complete"] == true)
        // A single execution of a paused provider: 503 with Retry-After (docs/api.md, GET /executions/{id}).
        let single = try await harness.get("/executions/b3os:\(harness.simulator.executionIDs(provider: .b3os, organizationID: "org_demo_acme").first ?? "x")")
        #expect(single.status == 503)
        #expect(single.headers["Retry-After"].flatMap { Int($0) }.map { $0 >= 1 } == true)
    }

    @Test func oneFailingDetailCallMarksOnlyItsItem() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        harness.simulator.setFault(SimulatedFault(.status(code: 500, retryAfterSeconds: nil), endpoint: .detail, calls: 1...1), provider: .kapso)
        let answer = try await harness.get("/executions?provider=kapso&limit=10&include=events")
        #expect(answer.status == 200)
        let items = answer.json["data"]?.arrayValue ?? []
        #expect(items.count == 10)
        let failed = items.filter { $0["enrichmentError"] != nil }
        #expect(failed.count == 1)
        #expect(failed.first?["events"] == .null)
        #expect(items.filter { $0["events"]?.arrayValue != nil }.count == 9)
        #expect(answer.json["complete"] == false)
        #expect(harness.simulator.counters(provider: .kapso).count(.detail) >= 10)
    }

    @Test func aSlowProviderTimesOutWithoutHoldingUpTheOthers() async throws {
        let harness = try await GatewayHarness { configuration in
            if let index = configuration.providers.firstIndex(where: { $0.name == "kapso" }) {
                configuration.providers[index].timeout = .milliseconds(300)
            }
        }
        defer { Task { await harness.stop() } }
        harness.simulator.setFault(SimulatedFault(.timeout), provider: .kapso)
        let partial = try await harness.get("/executions?limit=10")
        #expect(partial.status == 200)
        #expect(partial.json["complete"] == false)
        let kapso = partial.json["providers"]?.arrayValue?.first { $0["name"] == "kapso" }
        #expect(kapso?["error"]?["status"] == 504)
        #expect(!partial.ids.isEmpty)
        let strict = try await harness.get("/executions?provider=kapso&limit=10&allowPartial=false")
        #expect(strict.status == 504)
    }

    @Test func malformedAndResetUpstreamAnswersBecomeProviderErrors() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        harness.simulator.setFault(SimulatedFault(.malformedJSON), provider: .kaizen)
        harness.simulator.setFault(SimulatedFault(.resetConnection), provider: .b3os)
        let answer = try await harness.get("/executions?limit=10")
        #expect(answer.status == 200)
        let errors = Dictionary(uniqueKeysWithValues: (answer.json["providers"]?.arrayValue ?? []).compactMap { entry -> (String, Int64)? in
            guard let name = entry["name"]?.stringValue, let status = entry["error"]?["status"]?.integerValue else { return nil }
            return (name, status)
        })
        #expect(errors == ["kaizen": 502, "b3os": 502])
        #expect(answer.ids.allSatisfy { $0.hasPrefix("kapso:") })
    }
}

/// Every filter on every provider, and random filtered walks while data changes (docs/api.md, GET /executions).
@Suite(.serialized) struct EndToEndFilterTests {
    @Test func everyFilterMeansTheSameForEveryProvider() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let all = try await harness.get("/executions?limit=100&include=raw")
        let items = all.json["data"]?.arrayValue ?? []
        for provider in ["kaizen", "kapso", "b3os"] {
            let mine = items.filter { $0["provider"]?.stringValue == provider }
            guard let sample = mine.first else {
                Issue.record("no executions of \(provider)")
                continue
            }
            // status
            let status = try #require(sample["status"]?.stringValue)
            let byStatus = try await harness.walk("/executions?provider=\(provider)&status=\(status)&limit=50")
            #expect(!byStatus.isEmpty)
            let statusItems = try await harness.get("/executions?provider=\(provider)&status=\(status)&limit=50")
            #expect(statusItems.json["data"]?.arrayValue?.allSatisfy { $0["status"]?.stringValue == status } == true)
            // workflowId
            if let workflow = sample["workflow"]?["id"]?.stringValue {
                let byWorkflow = try await harness.get("/executions?provider=\(provider)&workflowId=\(percentEncode(workflow))&limit=100")
                let workflows = Set(byWorkflow.json["data"]?.arrayValue?.compactMap { $0["workflow"]?["id"]?.stringValue } ?? [])
                #expect(workflows == [workflow], "\(provider) workflowId")
            }
            // createdAfter / createdBefore (inclusive)
            let created = try #require(sample["createdAt"]?.stringValue)
            let window = try await harness.get("/executions?provider=\(provider)&createdAfter=\(created)&createdBefore=\(created)&limit=100")
            #expect(window.ids.contains(try #require(sample["id"]?.stringValue)), "\(provider) inclusive window")
            #expect(window.json["data"]?.arrayValue?.allSatisfy { $0["createdAt"]?.stringValue.flatMap(Timestamp.init(rfc3339:)) == Timestamp(rfc3339: created) } == true)
            // q: a fragment of the id matches case-insensitively
            let id = try #require(sample["providerExecutionId"]?.stringValue)
            let fragment = String(id.suffix(6)).uppercased()
            let searched = try await harness.get("/executions?provider=\(provider)&q=\(percentEncode(fragment))&limit=100")
            #expect(searched.ids.contains(try #require(sample["id"]?.stringValue)), "\(provider) q")
            // isTest
            let tests = try await harness.get("/executions?provider=\(provider)&isTest=true&limit=100")
            let notTests = try await harness.get("/executions?provider=\(provider)&isTest=false&limit=100")
            let unfiltered = try await harness.get("/executions?provider=\(provider)&limit=100")
            if provider == "kaizen" {
                #expect(tests.json["data"]?.arrayValue?.allSatisfy { $0["isTest"] == true } == true)
                #expect(notTests.json["data"]?.arrayValue?.allSatisfy { $0["isTest"] == false } == true)
            } else {
                #expect(tests.ids.isEmpty, "\(provider) has no test executions")
                #expect(notTests.ids == unfiltered.ids, "\(provider): isTest=false matches all")
            }
        }
    }

    @Test(arguments: [1, 2, 3])
    func randomFilteredWalksWhileExecutionsArrive(seed: UInt64) async throws {
        let harness = try await GatewayHarness(simulatorConfiguration: SimulatorConfiguration(seed: seed, executionsPerOrganization: 50))
        defer { Task { await harness.stop() } }
        let statuses = ExecutionStatus.allCases.map(\.rawValue)
        var generator = SeededGenerator(state: seed)
        let chosen = statuses.shuffled(using: &generator).prefix(Int.random(in: 2...4, using: &generator)).joined(separator: ",")
        let limit = Int.random(in: 3...13, using: &generator)
        let query = "status=\(chosen)"
        let reference = try await harness.walk("/executions?\(query)&limit=100")
        var inserted = 0
        let walked = try await harness.walk("/executions?\(query)&limit=\(limit)") {
            for provider in SimulatedProvider.allCases {
                _ = try harness.simulator.insertExecutions(provider: provider, count: 1)
                inserted += 1
            }
        }
        #expect(inserted > 0)
        #expect(Set(walked).count == walked.count, "duplicates")
        #expect(walked == reference, "gaps or order")
    }
}

struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
