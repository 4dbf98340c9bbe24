import GatewayHTTP
import GatewayJSON
import GatewayServer
@testable import ProviderSimulator
import Testing

@Suite struct B3OSSimulatorTests {
    static let itemFields = [
        "checkoutSessionId", "clientSafeMetadata", "createdAt", "externalRef", "finishedAt", "id", "idempotencyKey",
        "initiatedById", "initiatedByType", "orderId", "organizationId", "paymentStatus", "requestPayload",
        "responsePayload", "runId", "sourceEntityId", "sourceEntityType", "sourceSystem", "startedAt", "status",
        "statusReason", "updatedAt", "workflowId",
    ]

    @Test func listUsesTheEnvelopeAndDefaults() async {
        let simulator = makeSimulator(executions: 30)
        let response = await b3osGet(simulator, "/v1/executions")
        #expect(response.status == .ok)
        #expect(response.json.keys == ["code", "data", "message", "requestId"])
        #expect(response.json["code"].int == 200)
        #expect(response.json["message"].string == "success")
        #expect(response.json["requestId"].string == response.headers["X-Request-Id"])
        let data: JSONValue = response.json["data"]
        #expect(data.keys == ["hasMore", "items", "limit", "offset"])
        #expect(data["limit"].int == 20 && data["offset"].int == 0 && data["hasMore"].bool == true)
        #expect(data["items"].array.count == 20)
        #expect(data["items"].array.allSatisfy { $0.keys == Self.itemFields })
    }

    @Test func offsetPagesCoverEverythingNewestFirst() async {
        let simulator = makeSimulator(executions: 45)
        var ids: [String] = []
        var offset = 0
        while true {
            let data: JSONValue = await b3osGet(simulator, "/v1/executions?limit=10&offset=\(offset)").json["data"]
            ids += data["items"].array.compactMap { $0["id"].string }
            offset += 10
            if data["hasMore"].bool != true { break }
        }
        #expect(ids == simulator.executionIDs(provider: .b3os, organizationID: "org_demo_acme"))
        #expect(ids.count == 45)
        let beyond: JSONValue = await b3osGet(simulator, "/v1/executions?offset=1000").json["data"]
        #expect(beyond["items"].array.isEmpty && beyond["hasMore"].bool == false)
    }

    @Test func ordersByCreatedAtWithTiesByID() async {
        let simulator = makeSimulator(executions: 80)
        let items = await b3osGet(simulator, "/v1/executions?limit=100").json["data"]["items"].array
        let keys = items.compactMap { item -> (Int64, String)? in
            guard let time = item["createdAt"].string.flatMap({ Timestamps.parseNanoseconds($0) }), let id = item["id"].string else { return nil }
            return (time, id)
        }
        #expect(keys.count == 80)
        for (newer, older) in zip(keys, keys.dropFirst()) {
            #expect(newer.0 > older.0 || (newer.0 == older.0 && newer.1 > older.1))
        }
        #expect(Set(keys.map(\.0)).count < keys.count)
    }

    @Test func insertsShiftOffsets() async throws {
        let clock = FakeClock()
        let simulator = makeSimulator(executions: 30, clock: clock)
        let before = await b3osGet(simulator, "/v1/executions?limit=5&offset=5").json["data"]["items"].array.compactMap { $0["id"].string }
        clock.advance(milliseconds: 1000)
        let inserted = try simulator.insertExecutions(provider: .b3os, count: 2, organizationID: "org_demo_acme")
        #expect(inserted.count == 2)
        let after = await b3osGet(simulator, "/v1/executions?limit=5&offset=7").json["data"]["items"].array.compactMap { $0["id"].string }
        #expect(before == after)
        let newest = await b3osGet(simulator, "/v1/executions?limit=2").json["data"]["items"].array.compactMap { $0["id"].string }
        #expect(Set(newest) == Set(inserted.map(\.id)))
    }

    @Test func startAndFinishTimesFollowTheStatus() async {
        let simulator = makeSimulator(executions: 100)
        let items = await b3osGet(simulator, "/v1/executions?limit=100").json["data"]["items"].array
        let statuses = Set(items.compactMap { $0["status"].string })
        #expect(statuses == Set(B3OSStatus.allCases.map(\.rawValue)))
        for item in items {
            let status = item["status"].string ?? ""
            if ["awaiting_payment", "payment_confirmed", "workflow_queued"].contains(status) { #expect(item["startedAt"] == .null) }
            if ["workflow_running", "workflow_waiting", "workflow_succeeded", "workflow_failed"].contains(status) {
                #expect(item["startedAt"].string != nil)
            }
            let finished = ["workflow_succeeded", "workflow_failed", "workflow_cancelled"].contains(status)
            #expect((item["finishedAt"] != .null) == finished)
            #expect(item["organizationId"].string == "org_demo_acme")
            #expect(item["requestPayload"].objectValue?.isEmpty == false)
        }
    }

    @Test(arguments: ["limit=0", "limit=101", "limit=x", "offset=-1", "offset=1.5", "limit="])
    func badPagingGets400InTheEnvelope(query: String) async {
        let simulator = makeSimulator(executions: 5)
        let response = await b3osGet(simulator, "/v1/executions?\(query)")
        #expect(response.status == .badRequest)
        #expect(response.json["code"].int == 400)
        #expect(response.json["data"] == .null)
        #expect(response.json["requestId"].string != nil)
    }

    @Test func authenticationScopesAndOrganizations() async {
        let simulator = makeSimulator(executions: 10)
        for key in ["", "nope", "b3sk_unknown", DemoCredential.kaizen] {
            let response = await b3osGet(simulator, "/v1/executions", key: key)
            #expect(response.status == .unauthorized, "\(key)")
            #expect(response.json["code"].int == 401)
        }
        let noScope = await b3osGet(simulator, "/v1/executions", key: DemoCredential.b3osWithoutReadScope)
        #expect(noScope.status == .forbidden)
        #expect(noScope.json["code"].int == 403)

        let acme = await b3osGet(simulator, "/v1/executions?limit=100").json["data"]["items"].array.compactMap { $0["id"].string }
        let globexViaHeader = await b3osGet(simulator, "/v1/executions?limit=100", organization: "org_demo_globex").json["data"]["items"].array
        let globex = await b3osGet(simulator, "/v1/executions?limit=100", key: DemoCredential.b3osSecondOrganization).json["data"]["items"].array
        #expect(globexViaHeader == globex)
        #expect(globex.allSatisfy { $0["organizationId"].string == "org_demo_globex" })
        #expect(Set(acme).isDisjoint(with: globex.compactMap { $0["id"].string }))

        let notMember = await b3osGet(simulator, "/v1/executions", key: DemoCredential.b3osSecondOrganization, organization: "org_demo_acme")
        #expect(notMember.status == .forbidden)
        #expect(await b3osGet(simulator, "/v1/executions", organization: "org_other").status == .forbidden)
    }

    @Test func detailHasExecutionAndEvents() async throws {
        let simulator = makeSimulator(executions: 40)
        let items = await b3osGet(simulator, "/v1/executions?limit=100").json["data"]["items"].array
        for item in items {
            let id = try #require(item["id"].string)
            let response = await b3osGet(simulator, "/v1/executions/\(id)")
            #expect(response.status == .ok)
            #expect(response.json["data"].keys == ["execution", "events"])
            #expect(response.json["data"]["execution"] == item)
            #expect(!response.json["data"]["events"].array.isEmpty)
        }
        let missing = await b3osGet(simulator, "/v1/executions/exec_nope")
        #expect(missing.status == .notFound)
        #expect(missing.json["code"].int == 404)
        let foreignID = try #require(simulator.executionIDs(provider: .b3os, organizationID: "org_demo_globex").first)
        #expect(await b3osGet(simulator, "/v1/executions/\(foreignID)").status == .notFound)
        #expect(await b3osGet(simulator, "/v1/executions/\(foreignID)", organization: "org_demo_globex").status == .ok)
    }

    @Test func optionalRateLimitAnswers429WithRetryAfter() async {
        let clock = FakeClock(fixedNow + 15_000)
        let simulator = makeSimulator(executions: 5, clock: clock) { $0.b3osRequestsPerMinute = 2 }
        #expect(await b3osGet(simulator, "/v1/executions").status == .ok)
        #expect(await b3osGet(simulator, "/v1/executions").status == .ok)
        let limited = await b3osGet(simulator, "/v1/executions")
        #expect(limited.status == .tooManyRequests)
        #expect(limited.json["code"].int == 429)
        #expect(limited.headers["Retry-After"] == "45")
    }
}
