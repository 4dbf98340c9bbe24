import GatewayHTTP
import GatewayJSON
import GatewayServer
@testable import ProviderSimulator
import Testing

@Suite struct FaultTests {
    @Test func statusFaultHitsExactlyTheChosenDetailCall() async throws {
        let simulator = makeSimulator(executions: 10)
        let ids = simulator.executionIDs(provider: .kaizen, organizationID: "org_kz_acme")
        simulator.setFault(SimulatedFault(.status(code: 503, retryAfterSeconds: 7), endpoint: .detail, calls: 2...2), provider: .kaizen)
        #expect(await kaizenList(simulator).status == .ok)
        #expect(await kaizenGet(simulator, ids[0]).status == .ok)
        let failed = await kaizenGet(simulator, ids[1])
        #expect(failed.status == .serviceUnavailable)
        #expect(failed.headers["Retry-After"] == "7")
        #expect(failed.json.keys == ["error"])
        #expect(await kaizenGet(simulator, ids[2]).status == .ok)
        #expect(await kaizenList(simulator).status == .ok)
    }

    @Test func latencyAddsUpAndIsAppliedThroughTheSleepHook() async {
        let sleeper = SleepRecorder()
        let simulator = makeSimulator(executions: 3, sleeper: sleeper) { $0.latencyMilliseconds = 5 }
        simulator.setFault(SimulatedFault(.latency(milliseconds: 200), endpoint: .list), provider: .b3os)
        #expect(await b3osGet(simulator, "/v1/executions").status == .ok)
        #expect(await b3osGet(simulator, "/v1/executions/none").status == .notFound)
        #expect(sleeper.recorded == [205, 5])
    }

    @Test func timeoutHoldsTheRequestThen504() async {
        let sleeper = SleepRecorder()
        let simulator = makeSimulator(executions: 3, sleeper: sleeper) { $0.timeoutFaultMilliseconds = 90_000 }
        simulator.setFault(SimulatedFault(.timeout, endpoint: .workflows, calls: 1...1), provider: .kapso)
        let response = await kapsoGet(simulator, "/workflows")
        #expect(sleeper.recorded == [90_000])
        #expect(response.status == .gatewayTimeout)
        #expect(await kapsoGet(simulator, "/workflows").status == .ok)
    }

    @Test func timeoutIsCancellable() async {
        let simulator = ProviderSimulator(configuration: SimulatorConfiguration(executionsPerOrganization: 1, timeoutFaultMilliseconds: 3_600_000))
        simulator.setFault(SimulatedFault(.timeout), provider: .b3os)
        let request = Task { await b3osGet(simulator, "/v1/executions") }
        request.cancel()
        // Returns only because the wait honours cancellation; otherwise this test would hang.
        let response = await request.value
        #expect(response.status == .gatewayTimeout)
    }

    @Test func transportFaultsAndMalformedJSON() async {
        let simulator = makeSimulator(executions: 5)
        simulator.setFault(SimulatedFault(.resetConnection, calls: 1...1), provider: .kaizen)
        simulator.setFault(SimulatedFault(.truncateBody(afterBytes: 10), calls: 2...2), provider: .kaizen)
        simulator.setFault(SimulatedFault(.truncateBody(afterBytes: nil), calls: 3...3), provider: .kaizen)
        simulator.setFault(SimulatedFault(.malformedJSON, calls: 4...4), provider: .kaizen)
        let reset = await kaizenList(simulator)
        #expect(reset.transportFault == .resetConnection)
        let truncated = await kaizenList(simulator)
        #expect(truncated.transportFault == .truncateBody(afterBytes: 10))
        #expect(truncated.status == .ok)
        let half = await kaizenList(simulator)
        #expect(half.transportFault == .truncateBody(afterBytes: half.body.count / 2))
        let malformed = await kaizenList(simulator)
        #expect(malformed.status == .ok && malformed.transportFault == nil)
        #expect((try? JSONParser.parse(malformed.body)) == nil)
        #expect(!malformed.body.isEmpty)
        let healthy = await kaizenList(simulator)
        #expect(healthy.transportFault == nil && healthy.json["total"].int == 5)
    }

    @Test func rateLimitFaultsSpeakEachProvidersDialect() async {
        let simulator = makeSimulator(executions: 3)
        for provider in SimulatedProvider.allCases {
            simulator.setFault(SimulatedFault(.rateLimited(retryAfterSeconds: 12), calls: 1...1), provider: provider)
        }
        let kaizen = await kaizenList(simulator)
        #expect(kaizen.status == .tooManyRequests && kaizen.headers["Retry-After"] == "12" && kaizen.json.keys == ["error"])
        let kapso = await kapsoGet(simulator, "/workflows")
        #expect(kapso.status == .tooManyRequests && kapso.headers["Retry-After"] == "12")
        #expect(kapso.headers["X-RateLimit-Remaining"] == "0" && kapso.json.keys == ["error", "message"])
        let b3os = await b3osGet(simulator, "/v1/executions")
        #expect(b3os.status == .tooManyRequests && b3os.headers["Retry-After"] == "12" && b3os.json["code"].int == 429)
    }

    @Test func faultsCanTargetACredentialOrAFraction() async {
        let simulator = makeSimulator(executions: 3)
        simulator.setFault(SimulatedFault(.status(code: 500, retryAfterSeconds: nil), credential: DemoCredential.kapsoSecondOrganization), provider: .kapso)
        #expect(await kapsoGet(simulator, "/workflows").status == .ok)
        let failing = await kapsoGet(simulator, "/workflows", key: DemoCredential.kapsoSecondOrganization)
        #expect(failing.status == .internalServerError && failing.json.keys == ["error", "message"])

        simulator.setFault(SimulatedFault(.status(code: 502, retryAfterSeconds: nil), probability: 0.5), provider: .b3os)
        var failures = 0
        for _ in 0..<200 where await b3osGet(simulator, "/v1/executions?limit=1").status == .badGateway {
            failures += 1
        }
        #expect(failures > 60 && failures < 140)
        simulator.clearFaults(provider: .b3os)
        #expect(await b3osGet(simulator, "/v1/executions?limit=1").status == .ok)
    }

    @Test func faultsAreControlledOverHTTP() async {
        let simulator = makeSimulator(executions: 3)
        let created = await send(simulator.b3os, .post, "/__sim/faults", body: #"{"kind":"status","status":503,"endpoint":"detail","count":1,"retryAfterSeconds":3}"#)
        #expect(created.status == .created)
        #expect(created.json["faults"][0]["kind"].string == "status")
        #expect(created.json["faults"][0]["fromCall"].int == 1 && created.json["faults"][0]["toCall"].int == 1)
        #expect(await send(simulator.b3os, .get, "/__sim/faults").json["faults"].array.count == 1)
        let failed = await b3osGet(simulator, "/v1/executions/whatever")
        #expect(failed.status == .serviceUnavailable && failed.headers["Retry-After"] == "3" && failed.json["code"].int == 503)
        #expect(await b3osGet(simulator, "/v1/executions/whatever").status == .notFound)

        let several = await send(simulator.b3os, .post, "/__sim/faults", body: #"[{"kind":"latency","latencyMs":1},{"kind":"reset","endpoint":"any"}]"#)
        #expect(several.json["faults"].array.count == 2)
        let farAway = await send(simulator.b3os, .post, "/__sim/faults", body: #"{"kind":"timeout","fromCall":9223372036854775807,"count":5}"#)
        #expect(farAway.status == .created)
        #expect(farAway.json["faults"][0]["toCall"].int == Int.max)
        #expect(await send(simulator.b3os, .delete, "/__sim/faults").status == .ok)
        #expect(await send(simulator.b3os, .get, "/__sim/faults").json["faults"].array.isEmpty)
        #expect(await b3osGet(simulator, "/v1/executions").transportFault == nil)

        for bad in [
            "", "{", #"{"kind":"explode"}"#, #"{"kind":"status"}"#, #"{"kind":"status","status":99}"#,
            #"{"kind":"latency","latencyMs":-1}"#, #"{"kind":"timeout","endpoint":"everything"}"#,
            #"{"kind":"timeout","fromCall":3,"toCall":2}"#, #"{"kind":"timeout","probability":2}"#, #"{"kind":"timeout","colour":"red"}"#,
            #"{"kind":"latency","latencyMs":99999999999}"#, #"{"kind":"timeout","count":0}"#, #"{"kind":"status","status":"503"}"#,
        ] {
            let response = await send(simulator.b3os, .post, "/__sim/faults", body: bad)
            #expect(response.status == .badRequest, "\(bad)")
            #expect(response.json["error"].string != nil)
        }
    }
}

@Suite struct ControlTests {
    @Test func countersCountPerEndpointAndCredential() async {
        let simulator = makeSimulator(executions: 3)
        _ = await kaizenList(simulator)
        _ = await kaizenList(simulator, key: DemoCredential.kaizenSecondOrganization)
        _ = await kaizenGet(simulator, "x")
        _ = await kaizenList(simulator, key: "secret-not-to-echo")
        await send(simulator.kaizen, .post, "/executions/list", body: "{}")
        await send(simulator.kaizen, .get, "/__sim/counters")
        let counters = simulator.counters(provider: .kaizen)
        #expect(counters.total == 5)
        #expect(counters.count(.list) == 4 && counters.count(.detail) == 1)
        #expect(counters.count(.list, credential: DemoCredential.kaizen) == 1)
        #expect(counters.count(.detail, credential: DemoCredential.kaizen) == 1)
        #expect(counters.count(.list, credential: "unknown") == 1)
        #expect(counters.count(.list, credential: "missing") == 1)
        #expect(counters.byCredential["secret-not-to-echo"] == nil)
        #expect(simulator.counters(provider: .kapso).total == 0)

        let http = await send(simulator.kaizen, .get, "/__sim/counters").json
        #expect(http["provider"].string == "kaizen")
        #expect(http["total"].int == 5)
        #expect(http["endpoints"]["list"].int == 4)
        #expect(http["credentials"][DemoCredential.kaizen]["detail"].int == 1)
        #expect(!String(decoding: http.serialized(), as: UTF8.self).contains("secret-not-to-echo"))
    }

    @Test func resetRestoresDataCountersAndFaults() async throws {
        let clock = FakeClock()
        let simulator = makeSimulator(executions: 10, clock: clock)
        let original = await kapsoGet(simulator, "/workflows").text
        let originalIDs = simulator.executionIDs(provider: .kapso, organizationID: "org_kp_acme")
        try simulator.insertExecutions(provider: .kapso, count: 3)
        simulator.setFault(SimulatedFault(.status(code: 500, retryAfterSeconds: nil)), provider: .kapso)
        #expect(await kapsoGet(simulator, "/workflows").status == .internalServerError)
        let reset = await send(simulator.kapso, .post, "/__sim/reset")
        #expect(reset.status == .ok)
        #expect(simulator.counters(provider: .kapso).total == 0)
        #expect(simulator.executionIDs(provider: .kapso, organizationID: "org_kp_acme") == originalIDs)
        #expect(await kapsoGet(simulator, "/workflows").text == original)
    }

    @Test func insertAndFinishOverHTTP() async throws {
        let clock = FakeClock()
        let simulator = makeSimulator(executions: 10, clock: clock)
        let inserted = await send(simulator.kaizen, .post, "/__sim/executions", body: #"{"count":2,"organization":"org_kz_globex","at":"2025-11-20T10:00:00.250Z"}"#)
        #expect(inserted.status == .created)
        let entries = inserted.json["inserted"].array
        #expect(entries.count == 2 && entries.allSatisfy { $0["organization"].string == "org_kz_globex" })
        let newest = await kaizenList(simulator, key: DemoCredential.kaizenSecondOrganization).json["executions"].array.prefix(2)
        #expect(Set(newest.compactMap { $0["id"].string }) == Set(entries.compactMap { $0["id"].string }))
        #expect(newest.allSatisfy { $0["startTime"].string == "2025-11-20T10:00:00.250Z" && $0["status"].string == "InProgress" })

        let everywhere = await send(simulator.kaizen, .post, "/__sim/executions")
        #expect(everywhere.json["inserted"].array.count == 2, "one per organisation by default")

        clock.advance(milliseconds: 5000)
        let running = Set(await kaizenList(simulator, #"{"status":"InProgress"}"#, key: DemoCredential.kaizenSecondOrganization).json["executions"].array.compactMap { $0["id"].string })
        let finished = await send(simulator.kaizen, .post, "/__sim/finish", body: #"{"outcome":"failed"}"#)
        #expect(finished.status == .ok)
        #expect(running.isSubset(of: Set(finished.json["finished"].array.compactMap { $0.string })))
        #expect(await kaizenList(simulator, #"{"status":"InProgress"}"#).json["total"].int == 0)
        let id = try #require(entries[0]["id"].string)
        let detail: JSONValue = await kaizenGet(simulator, id, key: DemoCredential.kaizenSecondOrganization).json["execution"]
        #expect(detail["status"].string == "Failed")
        #expect(detail["endTime"].string == "2025-11-20T10:00:05.000Z")
        #expect(detail["durationMs"].int == 4750)

        for bad in [#"{"count":-1}"#, #"{"count":"2"}"#, #"{"organization":"org_nope"}"#, #"{"status":"Exploded"}"#, #"{"at":"soon"}"#, "[1]"] {
            #expect(await send(simulator.kaizen, .post, "/__sim/executions", body: bad).status == .badRequest, "\(bad)")
        }
        #expect(await send(simulator.kaizen, .post, "/__sim/finish", body: #"{"outcome":"maybe"}"#).status == .badRequest)
    }

    @Test func finishByIDMovesKapsoAndB3OSExecutionsToTerminalStatuses() async throws {
        let clock = FakeClock()
        let simulator = makeSimulator(executions: 5, clock: clock)
        let kapso = try simulator.insertExecutions(provider: .kapso, count: 1, organizationID: "org_kp_acme", status: "waiting")
        let b3os = try simulator.insertExecutions(provider: .b3os, count: 1, organizationID: "org_demo_acme", status: "workflow_queued")
        clock.advance(milliseconds: 3000)
        #expect(simulator.finishExecutions(provider: .kapso, ids: kapso.map(\.id)) == kapso.map(\.id))
        #expect(simulator.finishExecutions(provider: .b3os, ids: b3os.map(\.id), outcome: .failed) == b3os.map(\.id))
        let kapsoDetail: JSONValue = await kapsoGet(simulator, "/workflow_executions/\(kapso[0].id)").json["data"]
        #expect(kapsoDetail["status"].string == "ended" && kapsoDetail["ended_at"].string == "2025-11-20T10:00:03Z")
        let b3osDetail: JSONValue = await b3osGet(simulator, "/v1/executions/\(b3os[0].id)").json["data"]["execution"]
        #expect(b3osDetail["status"].string == "workflow_failed")
        #expect(b3osDetail["startedAt"].string != nil && b3osDetail["finishedAt"].string == "2025-11-20T10:00:03Z")
        #expect(simulator.finishExecutions(provider: .kapso, ids: kapso.map(\.id)).isEmpty, "finished ones stay finished")
    }

    @Test func steadyInsertionFollowsTheClock() async {
        let clock = FakeClock()
        let simulator = makeSimulator(executions: 10, clock: clock) { $0.insertEveryMilliseconds = 1000 }
        #expect(await b3osGet(simulator, "/v1/executions").json["data"]["items"].array.count == 10)
        clock.advance(milliseconds: 5500)
        let items = await b3osGet(simulator, "/v1/executions?limit=100").json["data"]["items"].array
        #expect(items.count == 15)
        #expect(items.prefix(5).compactMap { $0["createdAt"].string } == [
            "2025-11-20T10:00:05Z", "2025-11-20T10:00:04Z", "2025-11-20T10:00:03Z", "2025-11-20T10:00:02Z", "2025-11-20T10:00:01Z",
        ])
        #expect(simulator.executionIDs(provider: .b3os, organizationID: "org_demo_globex").count == 15)
        #expect(simulator.executionIDs(provider: .kaizen, organizationID: "org_kz_acme").count == 10, "only providers that were asked catch up")
    }

    @Test func sameSeedAndClockGiveTheSameWorld() async {
        let first = makeSimulator(executions: 25, seed: 11)
        let second = makeSimulator(executions: 25, seed: 11)
        let other = makeSimulator(executions: 25, seed: 12)
        #expect(await kaizenList(first).body == kaizenList(second).body)
        #expect(await b3osGet(first, "/v1/executions").json["data"] == b3osGet(second, "/v1/executions").json["data"])
        #expect(await kapsoGet(first, "/workflows").body == kapsoGet(second, "/workflows").body)
        #expect(await kaizenList(first).body != kaizenList(other).body)
    }

    @Test func executionCountsArePerProvider() async {
        let simulator = makeSimulator { configuration in
            configuration.executionsPerOrganization = [.kaizen: 3, .kapso: 0, .b3os: 7]
        }
        #expect(await kaizenList(simulator).json["total"].int == 3)
        #expect(simulator.executionIDs(provider: .kapso, organizationID: "org_kp_acme").isEmpty)
        #expect(simulator.executionIDs(provider: .b3os, organizationID: "org_demo_acme").count == 7)
    }
}
