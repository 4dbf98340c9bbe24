import GatewayHTTP
import GatewayJSON
import GatewayServer
@testable import ProviderSimulator
import Testing

@Suite struct KaizenSimulatorTests {
    @Test func listReturnsEveryExecutionNewestFirstWithTiesByID() async {
        let simulator = makeSimulator(executions: 60)
        let response = await kaizenList(simulator)
        #expect(response.status == .ok)
        let executions = response.json["executions"].array
        #expect(executions.count == 60)
        #expect(response.json["total"].int == 60)
        let keys = executions.compactMap { item -> (Int64, String)? in
            guard let time = item["startTime"].string.flatMap({ Timestamps.parseNanoseconds($0) }), let id = item["id"].string else { return nil }
            return (time, id)
        }
        #expect(keys.count == 60)
        for (newer, older) in zip(keys, keys.dropFirst()) {
            #expect(newer.0 > older.0 || (newer.0 == older.0 && newer.1 > older.1))
        }
        let distinctTimes = Set(keys.map(\.0))
        #expect(distinctTimes.count < keys.count, "the data must contain timestamp ties")
        #expect(executions.map(\.["id"]).compactMap(\.string) == simulator.executionIDs(provider: .kaizen, organizationID: "org_kz_acme"))
    }

    @Test func everyStatusHasItsOwnShape() async {
        let simulator = makeSimulator(executions: 40)
        let executions = await kaizenList(simulator).json["executions"].array
        let byStatus = Dictionary(grouping: executions) { $0["status"].string ?? "" }
        #expect(Set(byStatus.keys) == ["InProgress", "Paused", "Enqueued", "Completed", "Failed"])
        let finishedOnly = ["durationMs", "endTime", "response", "truncatedResponse", "error"]
        for (status, items) in byStatus {
            for item in items {
                let keys = Set(item.keys)
                if status == "Completed" || status == "Failed" {
                    #expect(keys.isSuperset(of: finishedOnly))
                    #expect(item["durationMs"].int != nil)
                } else {
                    #expect(keys.isDisjoint(with: finishedOnly))
                }
                if status == "Failed" { #expect(item["error"].objectValue != nil) }
                if status == "Completed" { #expect(item["error"] == .null) }
            }
        }
        #expect(executions.contains { $0["batch"] == .null })
        #expect(executions.contains { $0["name"] == .null })
        #expect(executions.contains { !$0.keys.contains("parentExecutionId") })
        #expect(executions.contains { $0["parentExecutionId"].string != nil })
    }

    @Test func filtersMatchTheirFields() async throws {
        let simulator = makeSimulator(executions: 60)
        let all = await kaizenList(simulator).json["executions"].array
        func ids(_ body: String) async -> [String] {
            let response = await kaizenList(simulator, body)
            #expect(response.status == .ok, "\(body): \(response.text)")
            #expect(response.json["total"].int == response.json["executions"].array.count)
            return response.json["executions"].array.compactMap { $0["id"].string }
        }
        func expected(_ predicate: (JSONValue) -> Bool) -> [String] { all.filter(predicate).compactMap { $0["id"].string } }

        #expect(await ids(#"{"status":"Failed"}"#) == expected { $0["status"].string == "Failed" })
        #expect(await ids(#"{"isTest":true}"#) == expected { $0["isTest"].bool == true })
        #expect(await ids(#"{"isTest":false}"#) == expected { $0["isTest"].bool == false })

        let withLogin = try #require(all.first { !$0["logins"].array.isEmpty })
        let loginID = try #require(withLogin["logins"][0]["id"].string)
        let byLogin = await ids(#"{"loginId":"\#(loginID)"}"#)
        #expect(byLogin == expected { $0["logins"].array.contains { $0["id"].string == loginID } })
        #expect(!byLogin.isEmpty)

        let withBatch = try #require(all.first { $0["batch"] != .null })
        let batchID = try #require(withBatch["batch"]["id"].string)
        #expect(await ids(#"{"batch":"\#(batchID)"}"#) == expected { $0["batch"]["id"].string == batchID })

        let workflowID = try #require(all[0]["workflow"]["id"].string)
        #expect(await ids(#"{"workflowId":"\#(workflowID)"}"#) == expected { $0["workflow"]["id"].string == workflowID })

        // Tags: every workflow carries tag_finance; tag_ops only some.
        #expect(await ids(#"{"tagFilters":["tag_finance"]}"#).count == all.count)
        let both = await ids(#"{"tagFilters":["tag_finance","tag_ops"]}"#)
        let opsOnly = await ids(#"{"tagFilters":["tag_ops"]}"#)
        #expect(both == opsOnly)
        #expect(both.count < all.count)
        #expect(await ids(#"{"tagFilters":["tag_finance","tag_nope"]}"#).isEmpty)

        // Inclusive bounds on startTime.
        let middle = all[all.count / 2]
        let instant = try #require(middle["startTime"].string)
        let exact = await ids(#"{"fromTs":"\#(instant)","toTs":"\#(instant)"}"#)
        #expect(exact.contains(try #require(middle["id"].string)))
        #expect(exact == expected { $0["startTime"].string == instant })
        let newer = await ids(#"{"fromTs":"\#(instant)"}"#)
        #expect(newer == expected { ($0["startTime"].string ?? "") >= instant })

        // Search: case-insensitive over id and parameter values, terms OR-ed.
        let withCustomer = try #require(all.first { $0["params"]["customer"].string != nil })
        let customer = try #require(withCustomer["params"]["customer"].string)
        let byCustomer = await ids(#"{"search":[\#(jsonQuoted(customer.uppercased()))]}"#)
        #expect(byCustomer.contains(try #require(withCustomer["id"].string)))
        #expect(byCustomer == expected { item in
            item["id"].string?.lowercased().contains(customer.lowercased()) == true
                || item["params"].scalarTexts.contains { $0.lowercased().contains(customer.lowercased()) }
        })
        let firstID = try #require(all[0]["id"].string)
        let lastID = try #require(all[all.count - 1]["id"].string)
        let union = await ids(#"{"search":["\#(firstID.suffix(12))","\#(lastID.suffix(12))"]}"#)
        #expect(union.contains(firstID) && union.contains(lastID))
        #expect(await ids(#"{"search":["no-such-term-anywhere"]}"#).isEmpty)
        #expect(await ids(#"{"search":[]}"#).count == all.count)
    }

    @Test(arguments: [
        "",
        "{",
        "[]",
        #"{"status":"Running"}"#,
        #"{"status":3}"#,
        #"{"fromTs":"yesterday"}"#,
        #"{"toTs":"2025-11-20T10:00:00+02:00"}"#,
        #"{"fromTs":"2025-02-30T10:00:00Z"}"#,
        #"{"isTest":"true"}"#,
        #"{"search":"abc"}"#,
        #"{"search":[1]}"#,
        #"{"tagFilters":"tag_ops"}"#,
    ])
    func badBodiesGet400WithError(body: String) async {
        let simulator = makeSimulator(executions: 5)
        let response = await kaizenList(simulator, body)
        #expect(response.status == .badRequest)
        #expect(response.json.keys == ["error"])
        #expect(response.json["error"].string?.isEmpty == false)
    }

    @Test func aKeyGivenTwiceTakesItsLastValueLikeJSONParse() async {
        let simulator = makeSimulator(executions: 40)
        let response = await kaizenList(simulator, #"{"status":"Failed","status":"Completed"}"#)
        #expect(response.status == .ok)
        let statuses = Set(response.json["executions"].array.map { $0["status"].string })
        #expect(statuses == ["Completed"])
    }

    @Test func unknownBodyKeysAreIgnoredLikeTheRealSchema() async {
        let simulator = makeSimulator(executions: 5)
        let response = await kaizenList(simulator, #"{"page":2,"sort":"asc"}"#)
        #expect(response.status == .ok)
        #expect(response.json["total"].int == 5)
    }

    @Test func refusesMissingOrUnknownKeys() async {
        let simulator = makeSimulator(executions: 5)
        for headers in [[], [("Authorization", "Bearer nope")], [("Authorization", "Basic \(DemoCredential.kaizen)")], [("X-API-Key", DemoCredential.kaizen)]] {
            let response = await send(simulator.kaizen, .post, "/executions/list", headers: headers, body: "{}")
            #expect(response.status == .unauthorized)
            #expect(response.json.keys == ["error"])
        }
        let detail = await send(simulator.kaizen, .post, "/executions/get", body: #"{"id":"x"}"#)
        #expect(detail.status == .unauthorized)
    }

    @Test func detailCarriesStartBlockDownloadsAndSessions() async throws {
        let simulator = makeSimulator(executions: 60)
        let all = await kaizenList(simulator).json["executions"].array
        var sawFiles = false
        for item in all {
            let id = try #require(item["id"].string)
            let response = await kaizenGet(simulator, id)
            #expect(response.status == .ok)
            let execution: JSONValue = response.json["execution"]
            #expect(execution["id"].string == id)
            #expect(execution["status"] == item["status"])
            #expect(execution["startTime"] == item["startTime"])
            for key in ["startBlock", "downloads", "liveViewUrl", "sessionId", "browserSessionId", "browserSessionVendorId", "agentConversationThreadId", "parentExecutionId"] {
                #expect(execution.keys.contains(key), "\(key) missing")
            }
            #expect(execution["downloads"]["files"].arrayValue != nil)
            if execution["downloads"]["files"].array.count >= 2 { sawFiles = true }
            switch execution["status"].string {
            case "InProgress": #expect(execution["liveViewUrl"].string != nil)
            case "Enqueued": #expect(execution["sessionId"] == .null && execution["startBlock"] == .null)
            case "Completed", "Failed": #expect(execution["endTime"].string != nil && execution["liveViewUrl"] == .null)
            default: break
            }
        }
        #expect(sawFiles, "some execution must have several downloaded files")
    }

    @Test func detailRefusesBadBodiesAndUnknownIDs() async {
        let simulator = makeSimulator(executions: 5)
        #expect(await kaizenGet(simulator, "ex_doesnotexist").status == .notFound)
        #expect(await kaizenGet(simulator, "ex_doesnotexist").json["error"].string == "Execution not found")
        for body in ["", "{}", #"{"id":5}"#, #"{"id":""}"#, "nope"] {
            let response = await send(simulator.kaizen, .post, "/executions/get", headers: [("Authorization", "Bearer \(DemoCredential.kaizen)")], body: body)
            #expect(response.status == .badRequest, "\(body)")
        }
    }

    @Test func organizationsStayApart() async throws {
        let simulator = makeSimulator(executions: 20)
        let first = Set(await kaizenList(simulator, key: DemoCredential.kaizen).json["executions"].array.compactMap { $0["id"].string })
        let second = Set(await kaizenList(simulator, key: DemoCredential.kaizenSecondOrganization).json["executions"].array.compactMap { $0["id"].string })
        #expect(first.count == 20 && second.count == 20)
        #expect(first.isDisjoint(with: second))
        let foreign = try #require(second.first)
        #expect(await kaizenGet(simulator, foreign, key: DemoCredential.kaizen).status == .notFound)
        #expect(await kaizenGet(simulator, foreign, key: DemoCredential.kaizenSecondOrganization).status == .ok)
    }

    @Test func unknownPathsAnswerInKaizensShape() async {
        let simulator = makeSimulator(executions: 1)
        let response = await send(simulator.kaizen, .get, "/v2/whatever", headers: [("Authorization", "Bearer \(DemoCredential.kaizen)")])
        #expect(response.status == .notFound)
        #expect(response.json.keys == ["error"])
    }
}
