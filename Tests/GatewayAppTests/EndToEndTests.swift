import ExecutionsAPI
import GatewayCrypto
import GatewayApp
import GatewayConfig
import GatewayHTTP
import GatewayJSON
import GatewayOpenAPI
import GatewayProviders
import ProviderSimulator
import Testing

/// The contract (docs/api.md) exercised end to end: HTTP client → gateway → simulated providers.
@Suite(.serialized) struct EndToEndTests {
    @Test func listsAllThreeProvidersInGlobalOrderWithTheContractShape() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let answer = try await harness.get("/executions?limit=50")
        #expect(answer.status == 200)
        let items = answer.json["data"]?.arrayValue ?? []
        #expect(items.count == 50)
        #expect(Set(items.compactMap { $0["provider"]?.stringValue }) == ["kaizen", "kapso", "b3os"])
        let keys = items.compactMap { item -> ExecutionSortKey? in
            guard let created = item["createdAt"]?.stringValue.flatMap(Timestamp.init(rfc3339:)),
                  let id = item["id"]?.stringValue else { return nil }
            return ExecutionSortKey(createdAt: created, id: id)
        }
        #expect(keys.count == items.count)
        for (earlier, later) in zip(keys, keys.dropFirst()) {
            #expect(earlier.precedes(later), "\(earlier) must precede \(later)")
        }
        let first = try #require(items.first?.objectValue)
        #expect(first.keys == ["id", "provider", "providerExecutionId", "workflow", "name", "status", "providerStatus",
                               "createdAt", "startedAt", "endedAt", "durationMs", "isTest", "attempts", "links"])
        #expect(answer.headers["Cache-Control"] == "private")
        #expect(answer.headers["ETag"]?.hasPrefix("W/\"") == true)
        #expect(answer.headers["Cache-Status"] == "ExecutionsGateway; fwd=miss")
        #expect(answer.headers["Link"]?.contains("rel=\"next\"") == true)
        #expect(answer.headers["RateLimit-Limit"] == "40")
        #expect(answer.json["complete"] == true)
        #expect(answer.json["providers"]?.arrayValue?.count == 3)
    }

    @Test func walkingEveryPageWhileExecutionsArriveShowsEachExistingExecutionOnce() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let before = try await harness.walk("/executions?limit=100")
        let walked = try await harness.walk("/executions?limit=7") {
            for provider in SimulatedProvider.allCases { _ = try harness.simulator.insertExecutions(provider: provider, count: 2) }
        }
        #expect(Set(walked).count == walked.count, "no duplicates")
        #expect(walked == before, "same executions, same order, none of the new ones")
    }

    @Test func secondIdenticalRequestIsServedFromCache() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        _ = try await harness.get("/executions?limit=10")
        let calls = SimulatedProvider.allCases.map { harness.simulator.counters(provider: $0).total }
        let second = try await harness.get("/executions?limit=10")
        #expect(second.headers["Cache-Status"] == "ExecutionsGateway; hit")
        #expect(SimulatedProvider.allCases.map { harness.simulator.counters(provider: $0).total } == calls)
        let bypass = try await harness.get("/executions?limit=10", headers: ["Cache-Control": "no-cache"])
        #expect(bypass.headers["Cache-Status"] == "ExecutionsGateway; fwd=request")
        #expect(SimulatedProvider.allCases.map { harness.simulator.counters(provider: $0).total } != calls)
    }

    @Test func clientsWithDifferentUpstreamCredentialsNeverShareData() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let mine = Set(try await harness.get("/executions?limit=100").ids)
        let theirs = Set(try await harness.get("/executions?limit=100", key: GatewayHarness.otherTenantKey).ids)
        #expect(!mine.isEmpty && !theirs.isEmpty)
        #expect(mine.isDisjoint(with: theirs))
    }

    @Test func includeJoinsDetailsOncePerExecution() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let answer = try await harness.get("/executions?provider=kaizen&limit=20&include=downloads,startBlock")
        let items = answer.json["data"]?.arrayValue ?? []
        #expect(items.count == 20)
        #expect(items.allSatisfy { $0["downloads"] != nil && $0["startBlock"] != nil })
        #expect(items.contains { $0["downloads"]?["files"]?.arrayValue?.isEmpty == false })
        let details = harness.simulator.counters(provider: .kaizen).count(.detail)
        #expect(details == 20)
        _ = try await harness.get("/executions?provider=kaizen&limit=20&include=downloads,startBlock")
        #expect(harness.simulator.counters(provider: .kaizen).count(.detail) <= 20 + 20, "active ones may be re-fetched after their TTL only")
    }

    @Test func aFailingProviderMakesThePagePartialNotFailed() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        harness.simulator.setFault(SimulatedFault(.status(code: 500, retryAfterSeconds: nil)), provider: .b3os)
        let answer = try await harness.get("/executions?limit=10")
        #expect(answer.status == 200)
        #expect(answer.json["complete"] == false)
        let b3os = answer.json["providers"]?.arrayValue?.first { $0["name"] == "b3os" }
        #expect(b3os?["status"] == "error")
        #expect(b3os?["error"]?["status"] == 502)
        #expect(answer.ids.allSatisfy { !$0.hasPrefix("b3os:") })
        let strict = try await harness.get("/executions?limit=10&allowPartial=false")
        #expect(strict.status == 502)
        #expect(strict.headers["Content-Type"] == "application/problem+json")
    }

    @Test func authenticationAuthorisationAndRateLimits() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let anonymous = try await harness.get("/executions", key: nil)
        #expect(anonymous.status == 401)
        #expect(anonymous.headers["WWW-Authenticate"]?.hasPrefix("Bearer") == true)
        #expect(try await harness.get("/executions", key: "wrong").status == 401)
        #expect(try await harness.get("/healthz", key: nil).status == 200)
        // batch: burst 2, 1 request/s. Every request counts, including refused ones.
        var statuses: [Int] = []
        for _ in 0..<2 { statuses.append(try await harness.get("/executions?limit=1", key: GatewayHarness.batchKey).status) }
        statuses.append(try await harness.get("/executions?provider=kapso", key: GatewayHarness.batchKey).status)
        #expect(statuses == [200, 200, 429])
        // A provider outside the client's list is forbidden, for lists and single executions alike.
        let forbidden = try await harness.get("/executions?provider=kapso", key: GatewayHarness.kaizenOnlyKey)
        #expect(forbidden.status == 403)
        #expect(forbidden.headers["Content-Type"] == "application/problem+json")
        #expect(try await harness.get("/executions/b3os:anything", key: GatewayHarness.kaizenOnlyKey).status == 403)
        let own = try await harness.get("/executions?limit=5", key: GatewayHarness.kaizenOnlyKey)
        #expect(own.status == 200)
        #expect(own.ids.allSatisfy { $0.hasPrefix("kaizen:") })
        let limited = try await harness.get("/executions?limit=1", key: GatewayHarness.batchKey)
        #expect(limited.headers["Retry-After"].flatMap { Int($0) }.map { $0 >= 1 } == true)
        #expect(limited.headers["RateLimit-Remaining"] == "0")
    }

    @Test func etagGives304AndDetailRoutesByPrefix() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let first = try await harness.get("/executions?limit=3")
        let tag = try #require(first.headers["ETag"])
        let again = try await harness.get("/executions?limit=3", headers: ["If-None-Match": tag])
        #expect(again.status == 304)
        #expect(again.body.isEmpty)
        let id = try #require(first.ids.first)
        let detail = try await harness.get("/executions/\(id)")
        #expect(detail.status == 200)
        #expect(detail.json["data"]?["id"]?.stringValue == id)
        #expect(detail.json["data"]?["detail"] != nil)
        #expect(try await harness.get("/executions/nope:1").status == 404)
        #expect(try await harness.get("/executions/kaizen:does-not-exist").status == 404)
    }

    /// Repeated hits of a stored page reuse one rendering; what is per request stays per request.
    @Test func repeatedHitsShareTheRenderingButNotTheRequestsOwnFields() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let built = try await harness.get("/executions?limit=3")
        #expect(built.headers["Cache-Status"] == "ExecutionsGateway; fwd=miss")
        var hits: [GatewayHarness.Answer] = []
        for _ in 0..<3 { hits.append(try await harness.get("/executions?limit=3")) }
        for hit in hits {
            #expect(hit.status == 200)
            #expect(hit.headers["Cache-Status"] == "ExecutionsGateway; hit")
            // `providers[].durationMs` is each request's own lookup time: on a loaded machine a
            // hit can take milliseconds, and then it is rendered on its own.
            #expect(Self.withoutDurations(hit.body) == Self.withoutDurations(hits[0].body))
            #expect(hit.headers["ETag"] == built.headers["ETag"])
            #expect(hit.headers["Link"] == built.headers["Link"])
        }
        #expect(Set(hits.compactMap { $0.headers["X-Request-Id"] }).count == 3)
        // Each hit is limited on its own: its own headers, below the full bucket (burst 40).
        let remaining: [Int] = hits.compactMap { hit in hit.headers["RateLimit-Remaining"].flatMap { Int($0) } }
        #expect(remaining.count == 3 && remaining.allSatisfy { $0 < 40 })
        #expect(hits.allSatisfy { $0.headers["RateLimit-Limit"] != nil && $0.headers["RateLimit-Reset"] != nil })

        // After the shared rendering exists: a conditional request still gets its 304, a
        // non-matching one the 200, and `no-cache` still fetches.
        let tag = try #require(built.headers["ETag"])
        let notModified = try await harness.get("/executions?limit=3", headers: ["If-None-Match": tag])
        #expect(notModified.status == 304 && notModified.body.isEmpty)
        #expect(notModified.headers["Cache-Status"] == "ExecutionsGateway; hit")
        let otherTag = try await harness.get("/executions?limit=3", headers: ["If-None-Match": "W/\"other\""])
        #expect(otherTag.status == 200)
        #expect(Self.withoutDurations(otherTag.body) == Self.withoutDurations(hits[0].body))
        let refreshed = try await harness.get("/executions?limit=3", headers: ["Cache-Control": "no-cache"])
        #expect(refreshed.headers["Cache-Status"] == "ExecutionsGateway; fwd=request")
    }

    /// The body with every `"durationMs":N` made `"durationMs":0`.
    static func withoutDurations(_ body: [UInt8]) -> String {
        String(decoding: body, as: UTF8.self).replacing(/"durationMs":[0-9]+/, with: "\"durationMs\":0")
    }

    @Test func noSecretEverReachesClientsOrLogs() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        harness.simulator.setFault(SimulatedFault(.status(code: 401, retryAfterSeconds: nil)), provider: .kapso)
        var emitted: [String] = []
        for target in ["/executions?limit=5", "/executions?limit=5&include=detail,raw", "/executions/kapso:x", "/metrics"] {
            let answer = try await harness.get(target)
            emitted.append(String(decoding: answer.body, as: UTF8.self))
            emitted.append(answer.headers.map { "\($0.name): \($0.value)" }.joined(separator: "\n"))
        }
        emitted += harness.logLines.all
        let secrets = [DemoCredential.kaizen, DemoCredential.kapso, DemoCredential.b3os, GatewayHarness.webKey, "test-cursor-secret-0123456789"]
        for secret in secrets {
            #expect(!emitted.contains { $0.contains(secret) }, "\(secret) leaked")
        }
    }

    @Test func invalidParametersNeverReachUpstream() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let answer = try await harness.get("/executions?limit=0&status=nope&colour=red")
        #expect(answer.status == 400)
        let names = Set(answer.json["invalidParams"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? [])
        #expect(names == ["limit", "status", "colour"])
        #expect(answer.json["requestId"]?.stringValue == answer.headers["X-Request-Id"])
        #expect(SimulatedProvider.allCases.allSatisfy { harness.simulator.counters(provider: $0).total == 0 })
    }

    @Test func operationalEndpointsAreOpenAndLabelledByRoute() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        #expect(try await harness.get("/readyz", key: nil).status == 200)
        let spec = try await harness.get("/openapi.yaml", key: nil)
        #expect(spec.status == 200)
        #expect(String(decoding: spec.body, as: UTF8.self).hasPrefix("openapi: 3.1") || String(decoding: spec.body, as: UTF8.self).contains("openapi: 3.1"))
        let listed = try await harness.get("/executions?limit=1")
        // Indexes start cold: Kaizen 1 (the whole list), B3OS 1 (the first window), Kapso 1
        // workflow list + the workflows that may hold the newest execution (those that last ran
        // in the newest second: Kapso's `last_executed_at` has whole seconds), not all 5.
        let kapsoCalls = harness.simulator.counters(provider: .kapso).total
        #expect(harness.simulator.counters(provider: .kaizen).total == 1)
        #expect(harness.simulator.counters(provider: .b3os).total == 1)
        #expect((2...3).contains(kapsoCalls))
        // Pages come from the provider indexes; a detail read goes through the response cache.
        _ = try await harness.get("/executions/\(try #require(listed.ids.first))")
        let metrics = String(decoding: try await harness.get("/metrics", key: nil).body, as: UTF8.self)
        for name in ["gateway_http_requests_total{method=\"GET\",route=\"/readyz\",status=\"200\"}",
                     "gateway_http_requests_total{method=\"GET\",route=\"/executions\",status=\"200\"}",
                     "gateway_upstream_requests_total{provider=\"kaizen\",outcome=\"success\"}",
                     "gateway_upstream_request_duration_seconds_bucket", "gateway_cache_misses_total", "gateway_connections_open",
                     "gateway_index_executions", "gateway_index_bytes", "gateway_index_count", "gateway_index_syncs_total{outcome=\"success\"}"] {
            #expect(metrics.contains(name), "missing \(name)")
        }
        let accessLog = harness.logLines.all.first { $0.contains("\"route\":\"/executions\"") }
        #expect(accessLog?.contains("\"upstreamCalls\":\(2 + kapsoCalls)}") == true, "\(accessLog ?? "no access log line")")
    }

    /// The served document declares the key requirement only where the gateway enforces one (with
    /// `auth.mode: none` it says `security: []`) and names the configured providers as the only ones.
    @Test(arguments: [AuthMode.apiKey, .none])
    func theServedDocumentMatchesTheAuthMode(_ mode: AuthMode) async throws {
        let harness = try await GatewayHarness { $0.auth.mode = mode }
        defer { Task { await harness.stop() } }
        let served = try await harness.get("/openapi.yaml", key: nil)
        #expect(served.status == 200)
        let text = String(decoding: served.body, as: UTF8.self)
        #expect(text.contains("      enum: ['kaizen', 'kapso', 'b3os']\n"))
        if mode == .apiKey {
            #expect(text.contains("\nsecurity:\n  - bearerAuth: []\n  - apiKeyAuth: []\n"))
            #expect(try await harness.get("/executions?limit=1", key: nil).status == 401)
        } else {
            #expect(text.contains("\nsecurity: []\n"))
            #expect(!text.contains("\nsecurity:\n"), "no top-level requirement is left")
            #expect(try await harness.get("/executions?limit=1", key: nil).status == 200)
        }
    }
}

@Suite struct ConfigurationReloadTests {
    @Test func reloadedClientsAndLimitsApplyAtOnce() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        #expect(try await harness.get("/executions?limit=1", key: GatewayHarness.batchKey).status == 200)
        let previous = harness.runtime.configuration
        var reloaded = previous
        reloaded.clients.removeAll { $0.id == "batch" }
        reloaded.clients.append(ClientSettings(id: "newcomer", keySHA256: SHA256.hexDigest(of: "newcomer-key-0001"),
                                               rateLimit: ClientRateLimit(requestsPerSecond: 0.01, burst: 1)))
        harness.runtime.applyReloaded(reloaded, previous: previous)
        #expect(try await harness.get("/executions?limit=1", key: GatewayHarness.batchKey).status == 401)
        let newcomer = try await harness.get("/executions?limit=1", key: "newcomer-key-0001")
        #expect(newcomer.status == 200)
        #expect(newcomer.headers["RateLimit-Limit"] == "1")
        #expect(try await harness.get("/executions?limit=1", key: "newcomer-key-0001").status == 429)
    }
}
