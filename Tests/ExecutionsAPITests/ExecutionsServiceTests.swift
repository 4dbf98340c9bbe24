@testable import ExecutionsAPI
import GatewayJSON
import GatewayProviders
import GatewayTestSupport
import Testing

@Suite struct ExecutionsServiceTests {
    let facts = RequestFacts(requestID: "req-1", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", bypassCache: false)

    func service(_ providers: [InMemoryProvider], secret: String = "secret-1") -> ExecutionsService {
        ExecutionsService(
            providers: providers.map { ProviderBinding(provider: $0, credential: UpstreamCredential(secret: "cred-\($0.name)")) },
            cursorSecret: secret, now: { 0 }
        )
    }

    func document(_ result: Result<ExecutionsAnswer, Problem>) throws -> JSONValue {
        let answer = try result.get()
        return try JSONParser.parse(answer.body)
    }

    func problem(_ result: Result<ExecutionsAnswer, Problem>) -> Problem? {
        if case .failure(let problem) = result { return problem }
        return nil
    }

    // MARK: - Consistent pagination

    @Test(arguments: 0..<12)
    func walkingEveryPageWhileExecutionsArriveYieldsEachOnceInOrder(seed: UInt64) async throws {
        var random = SplitMix64(seed: seed &* 7919 &+ 1)
        let statuses = ExecutionStatus.allCases
        let providers = ["kaizen", "kapso", "b3os"].map { name in
            InMemoryProvider(name: name, executions: (0..<Int.random(in: 0...60, using: &random)).map { index in
                // Few distinct seconds, so ties on createdAt are common (tie-break on id).
                makeExecution(provider: name, id: "e\(index)", second: Int64.random(in: 0...25, using: &random),
                              status: statuses.randomElement(using: &random) ?? .running,
                              isTest: name == "kaizen" ? Bool.random(using: &random) : nil)
            })
        }
        let service = service(providers)
        var parameters: [(name: String, value: String)] = [("limit", String(Int.random(in: 1...15, using: &random)))]
        var filter = ExecutionFilter()
        if Bool.random(using: &random) {
            let chosen = Set(statuses.shuffled(using: &random).prefix(Int.random(in: 1...3, using: &random)))
            parameters.append(("status", chosen.map(\.rawValue).joined(separator: ",")))
            filter.statuses = chosen
        }
        if Bool.random(using: &random) {
            parameters.append(("isTest", "false"))
            filter.isTest = false
        }
        let expected = providers.flatMap(\.all).filter(filter.matches).sorted { $0.sortKey.precedes($1.sortKey) }.map(\.id)

        var seen: [String] = []
        var cursor: String?
        var pages = 0
        repeat {
            let items = cursor.map { [("cursor", $0)] } ?? parameters
            let page = try document(await service.list(items, client: .anonymous, facts: facts))
            seen += page["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
            cursor = page["page"]?["nextCursor"]?.stringValue
            // New executions arrive upstream between pages; they are newer than anything listed.
            for provider in providers {
                provider.insert(makeExecution(provider: provider.name, id: "new\(pages)", second: 1_000 + Int64(pages), status: .running))
            }
            pages += 1
        } while cursor != nil && pages < 500
        #expect(seen == expected)
        #expect(Set(seen).count == seen.count)
    }

    @Test func aFailingProviderIsReportedAndResumedLater() async throws {
        let a = InMemoryProvider(name: "a", executions: (0..<5).map { makeExecution(provider: "a", id: "a\($0)", second: Int64($0) * 2, status: .running) })
        let b = InMemoryProvider(name: "b", executions: (0..<5).map { makeExecution(provider: "b", id: "b\($0)", second: Int64($0) * 2 + 1, status: .failed) })
        let service = service([a, b])
        b.failNext(1)
        let first = try document(await service.list([("limit", "4")], client: .anonymous, facts: facts))
        #expect(first["complete"] == false)
        #expect(first["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["a:a4", "a:a3", "a:a2", "a:a1"])
        let report = first["providers"]?.arrayValue?.first { $0["name"] == "b" }
        #expect(report?["status"] == "error")
        #expect(report?["error"]?["status"] == 504)
        #expect(report?["error"]?["requestId"] == "req-1")

        var ids: [String] = []
        var cursor = first["page"]?["nextCursor"]?.stringValue
        while let next = cursor {
            let page = try document(await service.list([("cursor", next)], client: .anonymous, facts: facts))
            ids += page["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
            cursor = page["page"]?["nextCursor"]?.stringValue
        }
        // Every execution of b still comes, none of a twice.
        #expect(Set(ids) == Set(["a:a0"] + (0..<5).map { "b:b\($0)" }))
        #expect(ids.count == 6)
    }

    @Test func allowPartialFalseTurnsAFailureIntoTheErrorResponse() async throws {
        let a = InMemoryProvider(name: "a", executions: [makeExecution(provider: "a", id: "1", second: 1, status: .running)])
        let b = InMemoryProvider(name: "b")
        b.failNext(1, with: .unreachable(reason: "reset"))
        let failure = problem(await service([a, b]).list([("allowPartial", "false")], client: .anonymous, facts: facts))
        #expect(failure?.status.code == 502)
        b.failNext(1, with: .timeout)
        #expect(problem(await service([a, b]).list([("allowPartial", "false")], client: .anonymous, facts: facts))?.status.code == 504)
    }

    @Test func everyProviderFailingIsStillAPartialPageThatCanBeRetried() async throws {
        let a = InMemoryProvider(name: "a", executions: [makeExecution(provider: "a", id: "1", second: 1, status: .running)])
        a.failNext(1, with: .paused(retryAfterSeconds: 7))
        let page = try document(await service([a]).list([], client: .anonymous, facts: facts))
        #expect(page["complete"] == false)
        #expect(page["data"]?.arrayValue?.isEmpty == true)
        let cursor = try #require(page["page"]?["nextCursor"]?.stringValue)
        let retried = try document(await service([a]).list([("cursor", cursor)], client: .anonymous, facts: facts))
        #expect(retried["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["a:1"])

        a.failNext(1, with: .paused(retryAfterSeconds: 7))
        let strict = problem(await service([a]).list([("allowPartial", "false")], client: .anonymous, facts: facts))
        #expect(strict?.status.code == 502, "a list answers 502 or 504 only (docs/api.md, GET /executions)")
    }

    // MARK: - Joins

    @Test func joinsOnlyWhatIsAskedOncePerExecutionAndReportsFailuresPerItem() async throws {
        let kaizen = InMemoryProvider(name: "kaizen", joinableFields: [.downloads, .startBlock],
                                      executions: (0..<4).map { makeExecution(provider: "kaizen", id: "k\($0)", second: Int64($0), status: .succeeded) })
        let kapso = InMemoryProvider(name: "kapso", joinableFields: [.events],
                                     executions: (0..<3).map { makeExecution(provider: "kapso", id: "p\($0)", second: Int64($0), status: .running) })
        let service = service([kaizen, kapso])

        let plain = try document(await service.list([], client: .anonymous, facts: facts))
        #expect(plain["data"]?.arrayValue?.first?["downloads"] == nil)
        #expect(kaizen.detailCalls == 0 && kapso.detailCalls == 0)

        kaizen.failDetail(of: "k2")
        let joined = try document(await service.list([("include", "downloads")], client: .anonymous, facts: facts))
        #expect(kaizen.detailCalls == 4)
        #expect(kapso.detailCalls == 0, "Kapso has no downloads: null without a call")
        let items = joined["data"]?.arrayValue ?? []
        #expect(items.count == 7)
        #expect(items.allSatisfy { $0["downloads"] != nil })
        let failed = items.first { $0["id"] == "kaizen:k2" }
        #expect(failed?["enrichmentError"]?["status"] == 502)
        #expect(failed?["downloads"] == .null)
        #expect(items.first { $0["id"] == "kapso:p1" }?["downloads"] == .null)
        #expect(joined["complete"] == false)

        let strict = problem(await service.list([("include", "downloads"), ("allowPartial", "false")], client: .anonymous, facts: facts))
        #expect(strict?.status.code == 502)
    }

    // MARK: - Cursors and parameters

    @Test func tamperedTruncatedAndForeignCursorsAreRejected() async throws {
        let provider = InMemoryProvider(name: "a", executions: (0..<10).map { makeExecution(provider: "a", id: "\($0)", second: Int64($0), status: .running) })
        let page = try document(await service([provider]).list([("limit", "2")], client: .anonymous, facts: facts))
        let cursor = try #require(page["page"]?["nextCursor"]?.stringValue)
        #expect(cursor.utf8.allSatisfy { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") || (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) })

        var tampered = Array(cursor.utf8)
        tampered[5] = tampered[5] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        for bad in [String(decoding: tampered, as: UTF8.self), String(cursor.dropLast(3)), "x", "a.b", cursor + "."] {
            let failure = problem(await service([provider]).list([("cursor", bad)], client: .anonymous, facts: facts))
            #expect(failure?.status.code == 400)
            #expect(failure?.invalidParams.map(\.name) == ["cursor"])
        }
        let foreign = problem(await service([provider], secret: "another-secret").list([("cursor", cursor)], client: .anonymous, facts: facts))
        #expect(foreign?.status.code == 400)

        // Same parameters again are fine; a different filter is refused and named.
        #expect(problem(await service([provider]).list([("cursor", cursor), ("limit", "2")], client: .anonymous, facts: facts)) == nil)
        let changed = problem(await service([provider]).list([("cursor", cursor), ("status", "failed"), ("limit", "3")], client: .anonymous, facts: facts))
        #expect(changed?.invalidParams.map(\.name) == ["limit", "status"])
    }

    @Test(arguments: [
        ([("limit", "0")], ["limit"]), ([("limit", "101")], ["limit"]), ([("limit", "1.5")], ["limit"]),
        ([("limit", "-1")], ["limit"]), ([("limit", "+5")], ["limit"]), ([("limit", "5"), ("limit", "6")], ["limit"]),
        ([("status", "running,done")], ["status"]), ([("status", "")], ["status"]), ([("status", "running,")], ["status"]),
        ([("provider", "nope")], ["provider"]), ([("createdAfter", "yesterday")], ["createdAfter"]),
        ([("createdBefore", "2026-11-20")], ["createdBefore"]), ([("isTest", "yes")], ["isTest"]),
        ([("include", "downloads,everything")], ["include"]), ([("allowPartial", "maybe")], ["allowPartial"]),
        ([("sort", "asc")], ["sort"]), ([("q", "")], ["q"]), ([("workflowId", "")], ["workflowId"]),
        ([("limit", "x"), ("bogus", "1"), ("status", "nope")], ["bogus", "limit", "status"]),
    ] as [([(String, String)], [String])])
    func invalidParametersAreNamedBeforeAnyUpstreamCall(_ items: [(String, String)], _ names: [String]) async {
        let provider = InMemoryProvider(name: "a")
        let failure = problem(await service([provider]).list(items.map { (name: $0.0, value: $0.1) }, client: .anonymous, facts: facts))
        #expect(failure?.status.code == 400)
        #expect(Set(failure?.invalidParams.map(\.name) ?? []) == Set(names))
        #expect(provider.listCalls == 0)
    }

    /// The largest query the document allows: 10 terms of 100 control characters and a workflow id
    /// of 256 (each character 6 bytes once JSON-escaped inside the cursor).
    static let largestQuery: [(String, String)] =
        (0..<10).map { index in ("q", String(repeating: "\u{1}", count: 99) + String(index)) }
            + [("workflowId", String(repeating: "\u{1}", count: 256))]

    @Test func theLargestQueryTheDocumentAllowsIsPageableWithThreeProviders() async throws {
        let providers = ["a", "b", "c"].map { InMemoryProvider(name: $0) }
        let page = try document(await service(providers).list(Self.largestQuery, client: .anonymous, facts: facts))
        #expect(page["data"] != nil)
        #expect(providers.allSatisfy { $0.listCalls == 1 })
    }

    @Test func aQueryTooLargeToPageThroughIsRefusedBeforeAnyUpstreamCall() async throws {
        // With twelve providers, each positioned on a long id, the largest query's cursor would not fit.
        let providers = (0..<12).map { InMemoryProvider(name: "provider-\($0)") }
        let refused = problem(await service(providers).list(Self.largestQuery, client: .anonymous, facts: facts))
        #expect(refused?.status.code == 400)
        #expect(refused?.invalidParams.map(\.name) == ["q", "workflowId"])
        #expect(providers.allSatisfy { $0.listCalls == 0 })
    }

    @Test func qCountsEveryRepeatTowardItsBound() async {
        let provider = InMemoryProvider(name: "a")
        let eleven = Array(repeating: ("q", "same"), count: 11)
        #expect(problem(await service([provider]).list(eleven, client: .anonymous, facts: facts))?.invalidParams.map(\.name) == ["q"])
        let ten = Array(repeating: ("q", "same"), count: 10)
        #expect((try? document(await service([provider]).list(ten, client: .anonymous, facts: facts))) != nil)
        let longest = [("q", String(repeating: "\u{1F600}", count: 100))]
        #expect((try? document(await service([provider]).list(longest, client: .anonymous, facts: facts))) != nil)
        let tooLong = [("q", String(repeating: "\u{1F600}", count: 101))]
        #expect(problem(await service([provider]).list(tooLong, client: .anonymous, facts: facts))?.invalidParams.map(\.name) == ["q"])
    }

    @Test func clientsOnlyReachTheirProviders() async throws {
        let a = InMemoryProvider(name: "a", executions: [makeExecution(provider: "a", id: "1", second: 1, status: .running)])
        let b = InMemoryProvider(name: "b", executions: [makeExecution(provider: "b", id: "1", second: 2, status: .running)])
        let client = GatewayClient(id: "web", allowedProviders: ["a"], upstreamCredentials: [:])
        let page = try document(await service([a, b]).list([], client: client, facts: facts))
        #expect(page["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == ["a:1"])
        #expect(problem(await service([a, b]).list([("provider", "b")], client: client, facts: facts))?.status.code == 403)
        #expect(problem(await service([a, b]).detail(id: "b:1", client: client, facts: facts))?.status.code == 403)
        #expect(problem(await service([a, b]).detail(id: "zzz:1", client: client, facts: facts))?.status.code == 404)
        #expect(problem(await service([a, b]).detail(id: "a:404", client: client, facts: facts))?.status.code == 404)
        #expect(b.listCalls == 0)
    }

    @Test func entityTagCoversWhatTheClientSees() async throws {
        let provider = InMemoryProvider(name: "a", executions: [makeExecution(provider: "a", id: "1", second: 1, status: .running)])
        let first = try await service([provider]).list([], client: .anonymous, facts: facts).get()
        let second = try await service([provider]).list([], client: .anonymous, facts: facts).get()
        #expect(first.entityTag == second.entityTag)
        #expect(first.entityTag.hasPrefix("W/\""))
        provider.insert(makeExecution(provider: "a", id: "2", second: 2, status: .running))
        let changed = try await service([provider]).list([], client: .anonymous, facts: facts).get()
        #expect(changed.entityTag != first.entityTag)
    }
}
