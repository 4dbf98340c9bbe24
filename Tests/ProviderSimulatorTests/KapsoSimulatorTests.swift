import Foundation
import GatewayHTTP
import GatewayJSON
import GatewayServer
@testable import ProviderSimulator
import Testing

@Suite struct KapsoSimulatorTests {
    /// The workflow with the most executions, so paging has several pages.
    func busiestWorkflow(_ simulator: ProviderSimulator, key: String = DemoCredential.kapso) async throws -> (id: String, ids: [String]) {
        var best: (String, [String]) = ("", [])
        for workflow in await kapsoGet(simulator, "/workflows", key: key).json["data"].array {
            let id = try #require(workflow["id"].string)
            let page = await kapsoGet(simulator, "/workflows/\(id)/executions?limit=100", key: key)
            let ids = page.json["data"].array.compactMap { $0["id"].string }
            if ids.count > best.1.count { best = (id, ids) }
        }
        return best
    }

    @Test func workflowsListTheOrganizationsWorkflows() async {
        let simulator = makeSimulator(executions: 10)
        let response = await kapsoGet(simulator, "/workflows")
        #expect(response.status == .ok)
        #expect(response.headers["Content-Type"] == "application/json; charset=utf-8")
        let data = response.json["data"].array
        #expect(data.count == 5)
        #expect(data.compactMap { $0["id"].string } == simulator.workflowIDs(provider: .kapso, organizationID: "org_kp_acme"))
        #expect(data.allSatisfy { $0["name"].string != nil && $0["status"].string != nil })
    }

    @Test func workflowsSayWhenTheyLastRanAndHowOften() async {
        let simulator = makeSimulator(executions: 60)
        for workflow in await kapsoGet(simulator, "/workflows").json["data"].array {
            let id = workflow["id"].string ?? ""
            let executions = await kapsoGet(simulator, "/workflows/\(id)/executions?limit=100").json["data"].array
            #expect(workflow["execution_count"].int == executions.count)
            // Newest first: the first item's start is the workflow's last run.
            #expect(workflow["last_executed_at"].string == executions.first?["started_at"].string)
            if executions.isEmpty { #expect(workflow["last_executed_at"] == .null) }
        }
    }

    @Test func listIsNewestFirstWithTiesByIDAndAllFields() async throws {
        let simulator = makeSimulator(executions: 120)
        var sawTie = false
        var statuses: Set<String> = []
        for workflow in simulator.workflowIDs(provider: .kapso, organizationID: "org_kp_acme") {
            let items = await kapsoGet(simulator, "/workflows/\(workflow)/executions?limit=100").json["data"].array
            let keys = items.map { ($0["started_at"].string ?? "", $0["id"].string ?? "") }
            for (newer, older) in zip(keys, keys.dropFirst()) {
                #expect(newer.0 > older.0 || (newer.0 == older.0 && newer.1 > older.1))
                if newer.0 == older.0 { sawTie = true }
            }
            for item in items {
                #expect(item.keys == [
                    "id", "started_at", "last_event_at", "ended_at", "tracking_id", "whatsapp_conversation_id",
                    "workflow", "current_step", "status", "waiting_reason",
                ])
                #expect(item["workflow"]["id"].string == workflow)
                statuses.insert(item["status"].string ?? "")
                let finished = ["ended", "failed"].contains(item["status"].string ?? "")
                #expect((item["ended_at"] != .null) == finished)
                #expect((item["waiting_reason"] != .null) == (item["status"].string == "waiting"))
            }
        }
        #expect(sawTie, "ties on started_at must occur inside a workflow")
        #expect(statuses == ["running", "waiting", "ended", "failed", "handoff"])
    }

    @Test func cursorsWalkForwardAndBackward() async throws {
        let simulator = makeSimulator(executions: 80)
        let (workflow, all) = try await busiestWorkflow(simulator)
        #expect(all.count > 10)

        var forward: [[String]] = []
        var target = "/workflows/\(workflow)/executions?limit=4"
        var firstPage = true
        while true {
            let response = await kapsoGet(simulator, target)
            #expect(response.status == .ok)
            let page = response.json["data"].array.compactMap { $0["id"].string }
            forward.append(page)
            let paging: JSONValue = response.json["paging"]
            if firstPage { #expect(paging["previous"] == .null) } else { #expect(paging["previous"].string != nil) }
            firstPage = false
            guard let after = paging["cursors"]["after"].string, let next = paging["next"].string else { break }
            #expect(next.hasPrefix("http://sim.test/platform/v1/workflows/\(workflow)/executions?"))
            #expect(next.contains("limit=4"))
            target = "/workflows/\(workflow)/executions?limit=4&after=\(percentEncode(after))"
        }
        #expect(forward.flatMap { $0 } == all)
        #expect(forward.dropLast().allSatisfy { $0.count == 4 })

        // Back from the last page with `before` gives the same pages in reverse.
        let lastPage = await kapsoGet(simulator, target)
        var cursor = try #require(lastPage.json["paging"]["cursors"]["before"].string)
        var backward: [[String]] = [forward[forward.count - 1]]
        while true {
            let response = await kapsoGet(simulator, "/workflows/\(workflow)/executions?limit=4&before=\(percentEncode(cursor))")
            #expect(response.status == .ok)
            let page = response.json["data"].array.compactMap { $0["id"].string }
            if page.isEmpty { break }
            backward.append(page)
            #expect(response.json["paging"]["next"].string != nil)
            guard response.json["paging"]["previous"].string != nil else { break }
            cursor = try #require(response.json["paging"]["cursors"]["before"].string)
        }
        // Pages going back are aligned on the last page, so compare the flattened sequence.
        #expect(backward.reversed().flatMap { $0 } == all)
    }

    @Test func cursorIsBase64JSONOfCreatedAtAndID() async throws {
        let simulator = makeSimulator(executions: 30)
        let (workflow, all) = try await busiestWorkflow(simulator)
        let response = await kapsoGet(simulator, "/workflows/\(workflow)/executions?limit=1")
        let cursor = try #require(response.json["paging"]["cursors"]["after"].string)
        let decoded = try #require(Data(base64Encoded: cursor))
        let object = try JSONParser.parse(Array(decoded))
        #expect(object["id"].string == all.first)
        #expect(object["created_at"].string.flatMap { Timestamps.parseNanoseconds($0) } != nil)
    }

    @Test func filtersByStatusAndInclusiveCreatedBounds() async throws {
        let simulator = makeSimulator(executions: 120)
        let (workflow, _) = try await busiestWorkflow(simulator)
        let base = "/workflows/\(workflow)/executions?limit=100"
        let all = await kapsoGet(simulator, base).json["data"].array
        for status in ["running", "waiting", "ended", "failed", "handoff"] {
            let ids = await kapsoGet(simulator, base + "&status=\(status)").json["data"].array.compactMap { $0["id"].string }
            #expect(ids == all.filter { $0["status"].string == status }.compactMap { $0["id"].string })
        }
        let middle = all[all.count / 2]
        let instant = try #require(middle["started_at"].string)
        let exact = await kapsoGet(simulator, base + "&created_after=\(instant)&created_before=\(instant)").json["data"].array
        #expect(exact.compactMap { $0["id"].string } == all.filter { $0["started_at"].string == instant }.compactMap { $0["id"].string })
        #expect(exact.contains { $0["id"] == middle["id"] })
        // Offsets are accepted and mean the same instant.
        let seconds = try #require(Timestamps.parseNanoseconds(instant)) / 1_000_000
        let shifted = Timestamps.format(milliseconds: seconds + 7_200_000, style: .seconds).replacingOccurrences(of: "Z", with: "+02:00")
        let sameInstant = await kapsoGet(simulator, base + "&created_after=\(percentEncode(shifted))&created_before=\(percentEncode(shifted))")
        #expect(sameInstant.json["data"].array.count == exact.count)
        let waitingReason = await kapsoGet(simulator, base + "&status=waiting&waiting_reason=timeout").json["data"].array
        #expect(waitingReason.allSatisfy { $0["waiting_reason"].string == "timeout" })
    }

    @Test(arguments: [
        "limit=0", "limit=101", "limit=abc", "limit=", "status=done", "created_after=yesterday",
        "created_before=2025-13-01T00:00:00Z", "after=%%%", "after=bm90IGpzb24=", "before=e30=",
        "before=e30=&after=e30=", "whatsapp_conversation_id=123",
    ])
    func badParametersGet400(query: String) async throws {
        let simulator = makeSimulator(executions: 10)
        let workflow = try #require(simulator.workflowIDs(provider: .kapso, organizationID: "org_kp_acme").first)
        let response = await kapsoGet(simulator, "/workflows/\(workflow)/executions?\(query)")
        #expect(response.status == .badRequest)
        #expect(response.json.keys == ["error", "message"])
    }

    @Test func detailHasContextEventsAndErrorDetails() async throws {
        let simulator = makeSimulator(executions: 60)
        var sawFailed = false
        for workflow in simulator.workflowIDs(provider: .kapso, organizationID: "org_kp_acme") {
            for item in await kapsoGet(simulator, "/workflows/\(workflow)/executions?limit=100").json["data"].array {
                let id = try #require(item["id"].string)
                let response = await kapsoGet(simulator, "/workflow_executions/\(id)")
                #expect(response.status == .ok)
                let data: JSONValue = response.json["data"]
                #expect(data["status"] == item["status"])
                #expect(data["execution_context"].objectValue != nil)
                #expect(!data["events"].array.isEmpty)
                if item["status"].string == "failed" {
                    sawFailed = true
                    #expect(data["error_details"]["message"].string != nil)
                } else {
                    #expect(data["error_details"] == .null)
                }
            }
        }
        #expect(sawFailed)
        let missing = await kapsoGet(simulator, "/workflow_executions/3c90c3cc-0d44-4b50-8888-8dd25736052a")
        #expect(missing.status == .notFound)
        #expect(missing.json.keys == ["error", "message"])
    }

    @Test func authFailuresAndTenantSeparation() async throws {
        let simulator = makeSimulator(executions: 20)
        for key in ["", "wrong", DemoCredential.kaizen] {
            let response = await kapsoGet(simulator, "/workflows", key: key)
            #expect(response.status == .unauthorized)
            #expect(response.json.keys == ["error", "message"])
            #expect(response.headers["X-RateLimit-Limit"] != nil)
        }
        let bearer = await send(simulator.kapso, .get, "/platform/v1/workflows", headers: [("Authorization", "Bearer \(DemoCredential.kapso)")])
        #expect(bearer.status == .unauthorized)

        let foreignWorkflow = try #require(simulator.workflowIDs(provider: .kapso, organizationID: "org_kp_globex").first)
        #expect(await kapsoGet(simulator, "/workflows/\(foreignWorkflow)/executions").status == .notFound)
        let second = await kapsoGet(simulator, "/workflows/\(foreignWorkflow)/executions?limit=100", key: DemoCredential.kapsoSecondOrganization)
        #expect(second.status == .ok)
        if let foreignExecution = second.json["data"][0]["id"].string {
            #expect(await kapsoGet(simulator, "/workflow_executions/\(foreignExecution)").status == .notFound)
        }
        let ownWorkflows = Set(simulator.workflowIDs(provider: .kapso, organizationID: "org_kp_acme"))
        #expect(ownWorkflows.isDisjoint(with: simulator.workflowIDs(provider: .kapso, organizationID: "org_kp_globex")))
    }

    @Test func rateLimitIsPerKeyPerMinuteWithHeaders() async {
        let clock = FakeClock()
        let simulator = makeSimulator(executions: 5, clock: clock) { $0.kapsoRequestsPerMinute = 3 }
        for remaining in [2, 1, 0] {
            let response = await kapsoGet(simulator, "/workflows")
            #expect(response.status == .ok)
            #expect(response.headers["X-RateLimit-Limit"] == "3")
            #expect(response.headers["X-RateLimit-Remaining"] == String(remaining))
        }
        let limited = await kapsoGet(simulator, "/workflows")
        #expect(limited.status == .tooManyRequests)
        #expect(limited.headers["Retry-After"] == "60")
        #expect(limited.headers["X-RateLimit-Remaining"] == "0")
        #expect(limited.json.keys == ["error", "message"])
        // Another key has its own budget.
        #expect(await kapsoGet(simulator, "/workflows", key: DemoCredential.kapsoSecondOrganization).status == .ok)
        clock.advance(milliseconds: 60_000)
        #expect(await kapsoGet(simulator, "/workflows").status == .ok)
    }

    @Test func basePathIsConfigurable() async {
        let simulator = makeSimulator(executions: 5) { $0.kapsoBasePath = "/" }
        let response = await send(simulator.kapso, .get, "/workflows", headers: [("X-API-Key", DemoCredential.kapso)])
        #expect(response.status == .ok)
        let prefixed = await send(simulator.kapso, .get, "/platform/v1/workflows", headers: [("X-API-Key", DemoCredential.kapso)])
        #expect(prefixed.status == .notFound)
        #expect(prefixed.json.keys == ["error", "message"])
    }
}
