@testable import ExecutionsAPI
import GatewayHTTP
import GatewayCache
import GatewayJSON
import GatewayProviders
import GatewayTestSupport
import GatewayUpstream
import Synchronization
import Testing

/// Monotonic nanoseconds that only move when a test says so; shared by the service and its store.
final class ManualClock: Sendable {
    private let instant = Atomic<UInt64>(1_000_000_000)
    func now() -> UInt64 { instant.load(ordering: .relaxed) }
    func advance(milliseconds: UInt64) { instant.add(milliseconds * 1_000_000, ordering: .relaxed) }
}

@Suite struct RenderedPageCacheTests {
    let facts = RequestFacts(requestID: "req-1", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", bypassCache: false)
    let noCache = RequestFacts(requestID: "req-2", traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", bypassCache: true)
    let clock = ManualClock()
    let policy = ProviderCachePolicy(
        listTTL: .seconds(5), activeDetailTTL: .seconds(2), terminalDetailTTL: .seconds(3600), staleIfError: .seconds(300)
    )

    func service(_ providers: [InMemoryProvider], store: MemoryLRUStore? = nil) -> ExecutionsService {
        let clock = self.clock
        return ExecutionsService(
            providers: providers.map { ProviderBinding(provider: $0, credential: UpstreamCredential(secret: "gateway-cred-\($0.name)")) },
            cursorSecret: "secret-1", now: { clock.now() },
            pageCaching: .store(store ?? MemoryLRUStore(maxBytes: 1 << 20, now: { clock.now() }), policy: policy)
        )
    }

    func providers(status: ExecutionStatus = .succeeded, joinable: Set<JoinableField> = []) -> (InMemoryProvider, InMemoryProvider) {
        let a = InMemoryProvider(name: "a", joinableFields: joinable, executions: (0..<6).map {
            makeExecution(provider: "a", id: "a\($0)", second: Int64($0) * 2, status: status)
        })
        let b = InMemoryProvider(name: "b", joinableFields: joinable, executions: (0..<6).map {
            makeExecution(provider: "b", id: "b\($0)", second: Int64($0) * 2 + 1, status: status)
        })
        return (a, b)
    }

    func document(_ answer: ExecutionsAnswer) throws -> JSONValue { try JSONParser.parse(answer.body) }

    // MARK: - Hits

    @Test func aRepeatedPageIsAnsweredFromStoredBytesWithoutCallingProviders() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        let first = try await service.list([("limit", "4")], client: .anonymous, facts: facts).get()
        #expect(first.cache == .miss)
        let second = try await service.list([("limit", "4")], client: .anonymous, facts: facts).get()
        #expect(second.cache == .hit)
        #expect(a.listCalls == 1 && b.listCalls == 1)
        #expect(second.entityTag == first.entityTag)
        #expect(second.nextCursor == first.nextCursor)

        let fresh = try document(first)
        let cached = try document(second)
        for member in ["data", "page", "complete"] { #expect(cached[member] == fresh[member], "\(member)") }
        let reports = cached["providers"]?.arrayValue ?? []
        #expect(reports.compactMap { $0["name"]?.stringValue } == ["a", "b"])
        #expect(reports.allSatisfy { $0["cache"] == "hit" && $0["status"] == "ok" && $0["durationMs"]?.integerValue == 0 })
        #expect(fresh["providers"]?.arrayValue?.allSatisfy { $0["cache"] == "miss" } == true)
        #expect(service.pageCacheStatistics == {
            var expected = PageCacheStatistics()
            expected.hits = 1
            expected.misses = 1
            expected.stores = 1
            return expected
        }())
    }

    @Test func aPageExpiresWithTheListTTLCountedFromTheRequestThatBuiltIt() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        _ = try await service.list([], client: .anonymous, facts: facts).get()
        clock.advance(milliseconds: 4_999)
        #expect(try await service.list([], client: .anonymous, facts: facts).get().cache == .hit)
        clock.advance(milliseconds: 1)
        #expect(try await service.list([], client: .anonymous, facts: facts).get().cache == .miss)
        #expect(a.listCalls == 2)
    }

    @Test func cursorPagesAreCachedUnderTheirOwnPositions() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        let first = try await service.list([("limit", "3")], client: .anonymous, facts: facts).get()
        let cursor = try #require(first.nextCursor)
        let second = try await service.list([("cursor", cursor)], client: .anonymous, facts: facts).get()
        #expect(second.cache == .miss)
        #expect(try document(second)["data"] != document(first)["data"])
        let again = try await service.list([("cursor", cursor)], client: .anonymous, facts: facts).get()
        #expect(again.cache == .hit)
        #expect(again.body.prefix(64) == second.body.prefix(64))
    }

    // MARK: - Who may share a page

    @Test func tenantsWithDifferentUpstreamCredentialsNeverShareAPage() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        let tenantA = GatewayClient(id: "tenant-a", allowedProviders: nil, upstreamCredentials: ["a": UpstreamCredential(secret: "tenant-a-key")])
        let tenantB = GatewayClient(id: "tenant-b", allowedProviders: nil, upstreamCredentials: ["a": UpstreamCredential(secret: "tenant-b-key")])
        // Same credentials as tenant A under another client id: the same upstream data, so it may share.
        let tenantAToo = GatewayClient(id: "tenant-a-2", allowedProviders: nil, upstreamCredentials: ["a": UpstreamCredential(secret: "tenant-a-key")])

        #expect(try await service.list([], client: tenantA, facts: facts).get().cache == .miss)
        #expect(try await service.list([], client: tenantB, facts: facts).get().cache == .miss)
        #expect(try await service.list([], client: .anonymous, facts: facts).get().cache == .miss)
        #expect(a.credentialsSeen == ["tenant-a-key", "tenant-b-key", "gateway-cred-a"])

        #expect(try await service.list([], client: tenantA, facts: facts).get().cache == .hit)
        #expect(try await service.list([], client: tenantAToo, facts: facts).get().cache == .hit)
        #expect(try await service.list([], client: tenantB, facts: facts).get().cache == .hit)
        #expect(a.listCalls == 3)
    }

    @Test func clientsWithDifferentProviderSetsGetTheirOwnPages() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        let onlyA = GatewayClient(id: "web", allowedProviders: ["a"], upstreamCredentials: [:])
        _ = try await service.list([], client: .anonymous, facts: facts).get()
        let restricted = try await service.list([], client: onlyA, facts: facts).get()
        #expect(restricted.cache == .miss)
        let ids = try document(restricted)["data"]?.arrayValue?.compactMap { $0["id"]?.stringValue } ?? []
        #expect(!ids.isEmpty && ids.allSatisfy { $0.hasPrefix("a:") })
    }

    @Test func aStoredPageIsStillAuthorisedForEveryClient() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        let onlyA = GatewayClient(id: "web", allowedProviders: ["a"], upstreamCredentials: [:])
        let first = try await service.list([("limit", "2")], client: .anonymous, facts: facts).get()
        let cursor = try #require(first.nextCursor)
        _ = try await service.list([("cursor", cursor)], client: .anonymous, facts: facts).get()
        #expect(try await service.list([("cursor", cursor)], client: .anonymous, facts: facts).get().cache == .hit)

        // The cursor covers provider b, which this client may not use: 403, stored page or not.
        guard case .failure(let problem) = await service.list([("cursor", cursor)], client: onlyA, facts: facts) else {
            Issue.record("a client was served a page of a provider it may not use")
            return
        }
        #expect(problem.status.code == 403)
        guard case .failure(let explicit) = await service.list([("limit", "2"), ("provider", "a,b")], client: onlyA, facts: facts) else {
            Issue.record("provider=a,b was served to a client allowed only a")
            return
        }
        #expect(explicit.status.code == 403)
    }

    // MARK: - What bypasses or is never stored

    @Test func noCacheSkipsTheStoredPageAndRefreshesIt() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        _ = try await service.list([], client: .anonymous, facts: facts).get()
        a.insert(makeExecution(provider: "a", id: "newest", second: 100, status: .running))
        let bypassed = try await service.list([], client: .anonymous, facts: noCache).get()
        #expect(bypassed.cache == .miss)
        #expect(a.listCalls == 2)
        #expect(try document(bypassed)["data"]?.arrayValue?.first?["id"] == "a:newest")
        // The page fetched for the no-cache request is the freshest there is: later requests get it.
        let later = try await service.list([], client: .anonymous, facts: facts).get()
        #expect(later.cache == .hit)
        #expect(try document(later)["data"]?.arrayValue?.first?["id"] == "a:newest")
    }

    @Test func incompletePagesAreNeverStored() async throws {
        let (a, b) = providers(joinable: [.downloads])
        let service = service([a, b])
        b.failNext(1)
        let partial = try await service.list([], client: .anonymous, facts: facts).get()
        #expect(try document(partial)["complete"] == false)
        #expect(try await service.list([], client: .anonymous, facts: facts).get().cache == .miss)
        #expect(b.listCalls == 2)

        a.failDetail(of: "a1")
        let withItemError = try await service.list([("include", "downloads")], client: .anonymous, facts: facts).get()
        #expect(try document(withItemError)["complete"] == false)
        #expect(try await service.list([("include", "downloads")], client: .anonymous, facts: facts).get().cache == .miss)
    }

    @Test(arguments: [CacheDisposition.hit, .stale])
    func pagesBuiltFromCachedOrStaleListsAreNotStored(_ disposition: CacheDisposition) async throws {
        let (a, b) = providers()
        let service = service([a, b])
        a.answer(list: disposition, detail: .miss)
        _ = try await service.list([], client: .anonymous, facts: facts).get()
        _ = try await service.list([], client: .anonymous, facts: facts).get()
        #expect(a.listCalls == 2, "a page may not outlive list data it did not fetch")
        #expect(service.pageCacheStatistics?.notCacheable == 2)
    }

    @Test func pagesBuiltFromCachedListsLiveUntilTheEarliestPartExpires() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        // a's list answer came from a cache entry with 1 s of freshness left; b's was fetched now.
        a.answer(list: .hit, detail: .miss)
        a.answerLists(freshUntil: clock.now() + 1_000_000_000)
        b.answerLists(freshUntil: clock.now() + 5_000_000_000)
        _ = try await service.list([], client: .anonymous, facts: facts).get()
        #expect(service.pageCacheStatistics?.stores == 1, "a cached part no longer makes a page unstorable")
        clock.advance(milliseconds: 999)
        #expect(try await service.list([], client: .anonymous, facts: facts).get().cache == .hit)
        #expect(a.listCalls == 1, "served from the stored page")
        clock.advance(milliseconds: 1)
        a.answerLists(freshUntil: clock.now() + 1_000_000_000)
        _ = try await service.list([], client: .anonymous, facts: facts).get()
        #expect(a.listCalls == 2, "the page may not outlive a's cached list")
        #expect(service.pageCacheStatistics?.stores == 2)
    }

    @Test func aPageNeverOutlivesTheListTTLEvenWhenItsPartsWould() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        a.answerLists(freshUntil: clock.now() + 60_000_000_000)
        b.answerLists(freshUntil: clock.now() + 60_000_000_000)
        _ = try await service.list([], client: .anonymous, facts: facts).get()
        clock.advance(milliseconds: 4_999)
        #expect(try await service.list([], client: .anonymous, facts: facts).get().cache == .hit)
        clock.advance(milliseconds: 1)
        #expect(try await service.list([], client: .anonymous, facts: facts).get().cache == .miss)
    }

    @Test func activeJoinedDetailsShortenAPagesLifeToTheirTTL() async throws {
        let (a, b) = providers(status: .running, joinable: [.downloads])
        let service = service([a, b])
        _ = try await service.list([("include", "downloads")], client: .anonymous, facts: facts).get()
        clock.advance(milliseconds: 1_999)
        #expect(try await service.list([("include", "downloads")], client: .anonymous, facts: facts).get().cache == .hit)
        clock.advance(milliseconds: 1)
        #expect(try await service.list([("include", "downloads")], client: .anonymous, facts: facts).get().cache == .miss)
    }

    @Test func cachedDetailsAreAcceptedOnlyForFinishedExecutions() async throws {
        let (finishedA, finishedB) = providers(status: .succeeded, joinable: [.downloads])
        finishedA.answer(list: .miss, detail: .hit)
        finishedB.answer(list: .miss, detail: .hit)
        let finished = service([finishedA, finishedB])
        _ = try await finished.list([("include", "downloads")], client: .anonymous, facts: facts).get()
        clock.advance(milliseconds: 4_000)
        #expect(try await finished.list([("include", "downloads")], client: .anonymous, facts: facts).get().cache == .hit)

        let (activeA, activeB) = providers(status: .running, joinable: [.downloads])
        activeA.answer(list: .miss, detail: .hit)
        let active = service([activeA, activeB])
        _ = try await active.list([("include", "downloads")], client: .anonymous, facts: facts).get()
        #expect(try await active.list([("include", "downloads")], client: .anonymous, facts: facts).get().cache == .miss)
    }

    @Test func pagesEvictedFromTheStoreAreRenderedAgain() async throws {
        let (a, b) = providers()
        let clock = self.clock
        // Room for about one page: the second query's page evicts the first.
        let store = MemoryLRUStore(maxBytes: 3_000, now: { clock.now() })
        let service = service([a, b], store: store)
        _ = try await service.list([("limit", "3")], client: .anonymous, facts: facts).get()
        _ = try await service.list([("limit", "5")], client: .anonymous, facts: facts).get()
        #expect(try await service.list([("limit", "3")], client: .anonymous, facts: facts).get().cache == .miss)
        #expect(store.statistics().bytesInUse <= 3_000)
        #expect(store.statistics().evictions >= 1)
    }

    // MARK: - One build per page

    /// Lets the tasks started so far run until `condition` holds; bounded, never a timed wait.
    func settle(until condition: () -> Bool) async {
        for _ in 0..<10_000 where !condition() { await Task.yield() }
    }

    @Test func concurrentMissesOfOnePageBuildItOnce() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        a.holdListCalls()
        let facts = self.facts
        let answers = await withTaskGroup(of: ExecutionsAnswer?.self) { group in
            for _ in 0..<5 {
                group.addTask { try? await service.list([("limit", "4")], client: .anonymous, facts: facts).get() }
            }
            await settle { a.waitingListCalls == 1 && service.pageCacheStatistics?.coalesced == 4 }
            a.releaseListCalls()
            var answers: [ExecutionsAnswer?] = []
            for await answer in group { answers.append(answer) }
            return answers.compactMap { $0 }
        }
        #expect(answers.count == 5)
        #expect(a.listCalls == 1 && b.listCalls == 1)
        #expect(Set(answers.map(\.entityTag)).count == 1)
        #expect(answers.allSatisfy { $0.cache == .miss }, "the waiters' data was fetched during their requests")
        let waiter = try #require(answers.first { $0.body != answers[0].body } ?? answers.last)
        #expect(try document(waiter)["providers"]?.arrayValue?.allSatisfy { $0["cache"] == "miss" } == true)
    }

    @Test func waitersBuildTheirOwnWhenTheSharedBuildCannotBeStored() async throws {
        let (a, b) = providers()
        let service = service([a, b])
        a.holdListCalls()
        b.failNext(1)
        let facts = self.facts
        let completes = await withTaskGroup(of: Bool?.self) { group in
            for _ in 0..<3 {
                group.addTask {
                    let answer = try? await service.list([], client: .anonymous, facts: facts).get()
                    return answer.flatMap { try? JSONParser.parse($0.body)["complete"]?.boolValue }
                }
            }
            await settle { a.waitingListCalls == 1 && service.pageCacheStatistics?.coalesced == 2 }
            a.releaseListCalls()
            var completes: [Bool?] = []
            for await complete in group { completes.append(complete) }
            return completes
        }
        // The failed build's page is never handed to others: each waiter fetched its own, complete one.
        #expect(completes.sorted { $0 == false && $1 != false } == [false, true, true])
        #expect(b.listCalls == 3)
    }

    @Test func aCancelledWaiterStopsWaitingForAnotherRequestsBuild() async {
        let clock = self.clock
        let pages = RenderedPageCache(store: MemoryLRUStore(maxBytes: 1 << 20, now: { clock.now() }), policy: policy, cursorSecret: "s")
        guard case .build = await pages.turn(for: "page") else {
            Issue.record("the first request for a page builds it")
            return
        }
        let waiter = Task { await pages.turn(for: "page") }
        await settle { pages.statistics.coalesced == 1 }
        waiter.cancel()
        // Answered while the build is still running: its client has gone, nothing is worth waiting for.
        guard case .buildOwn = await waiter.value else {
            Issue.record("a cancelled waiter is released to build its own (its fetches then fail fast)")
            return
        }
        pages.finishBuild("page", storedPage: nil)
        guard case .build = await pages.turn(for: "page") else {
            Issue.record("after the build ended, the next request builds again")
            return
        }
        pages.finishBuild("page", storedPage: nil)
    }

    @Test func cursorsInLinkHeadersAreNotReencoded() {
        #expect(ExecutionsEndpoints.queryValue("eyJ2IjoxfQ.abc-_09") == "eyJ2IjoxfQ.abc-_09")
        #expect(ExecutionsEndpoints.queryValue("a b/c") == "a%20b%2Fc")
        #expect(ExecutionsEndpoints.queryValue("~AZaz09-._") == "~AZaz09-._")
        #expect(ExecutionsEndpoints.queryValue("") == "")
        #expect(ExecutionsEndpoints.queryValue("é&=") == "%C3%A9%26%3D")
    }

    // MARK: - Stored form and wiring

    @Test func theStoredFormRoundTripsAndGarbageIsAMiss() throws {
        let page = RenderedPage(
            head: Array(#"{"data":[],"page":{"limit":20,"hasMore":true,"nextCursor":"abc.def"},"complete":true"#.utf8)[...],
            entityTag: #"W/"tag""#, nextCursor: "abc.def",
            providers: [.init(name: "kaizen", called: true, exhausted: false), .init(name: "kapso-é", called: false, exhausted: true)]
        )
        let encoded = page.encoded()
        #expect(RenderedPage(decoding: encoded) == page)
        let noCursor = RenderedPage(head: [], entityTag: "", nextCursor: nil, providers: [])
        #expect(RenderedPage(decoding: noCursor.encoded()) == noCursor)
        // Every truncation short of the head is refused, never read out of bounds.
        let headStart = encoded.count - page.head.count
        for length in 0..<headStart { #expect(RenderedPage(decoding: Array(encoded.prefix(length))) == nil) }
        var random = SplitMix64(seed: 42)
        for _ in 0..<200 {
            var bytes = Array("EGP1".utf8) + (0..<Int.random(in: 0...40, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) }
            if bytes.count > 4, Bool.random(using: &random) { bytes[4] = 0xFF }
            _ = RenderedPage(decoding: bytes)
        }
    }

    @Test func sharedWithProvidersUsesTheFetchersCommonStoreAndTTLs() throws {
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        let endpoint = UpstreamEndpoint(name: "k", policy: UpstreamPolicy(), transport: client)
        let store = MemoryLRUStore(maxBytes: 1 << 20)
        let shared = ResponseCache(store: store)
        func binding(_ name: String, cache: ResponseCache) throws -> ProviderBinding {
            let provider = try ProviderFactory.make(
                name: name, type: .kaizen, baseURL: "http://127.0.0.1:9", endpoint: endpoint, cache: cache, cachePolicy: policy
            )
            return ProviderBinding(provider: provider, credential: UpstreamCredential(secret: "c"))
        }
        let resolved = RenderedPageCache.resolve(
            .sharedWithProviders, providers: [try binding("one", cache: shared), try binding("two", cache: shared)], cursorSecret: "s"
        )
        #expect((resolved?.store as? MemoryLRUStore) === store)
        #expect(resolved?.policy == policy)

        let separate = RenderedPageCache.resolve(
            .sharedWithProviders,
            providers: [try binding("one", cache: shared), try binding("two", cache: ResponseCache(store: MemoryLRUStore(maxBytes: 1)))],
            cursorSecret: "s"
        )
        #expect(separate == nil, "providers with different caches: no single budget to share")
        #expect(RenderedPageCache.resolve(.sharedWithProviders, providers: [ProviderBinding(provider: InMemoryProvider(name: "m"), credential: UpstreamCredential(secret: "c"))], cursorSecret: "s") == nil)
        #expect(RenderedPageCache.resolve(.disabled, providers: [try binding("one", cache: shared)], cursorSecret: "s") == nil)
    }

    @Test func keysSeparateSecretsAndNeverContainTheCredential() {
        let one = RenderedPageCache(store: MemoryLRUStore(maxBytes: 1), policy: policy, cursorSecret: "s1")
        let two = RenderedPageCache(store: MemoryLRUStore(maxBytes: 1), policy: policy, cursorSecret: "s2")
        let states: [(name: String, state: ProviderCursorState)] = [("a", ProviderCursorState(position: nil, exhausted: false))]
        let key = one.key(query: ListQuery(), states: states, credentialIdentities: [UpstreamCredential(secret: "upstream-secret").identity])
        #expect(key != two.key(query: ListQuery(), states: states, credentialIdentities: [UpstreamCredential(secret: "upstream-secret").identity]))
        #expect(!key.contains("upstream-secret"))
        #expect(key.hasPrefix("executions:page:"))
        #expect(key != one.key(query: ListQuery(limit: 21), states: states, credentialIdentities: [UpstreamCredential(secret: "upstream-secret").identity]))
    }
}

/// `list`'s fast path: a stored fresh page, and an invalid request, are answered without
/// suspending; the memo of recent query plans never outlives what a plan depends on.
@Suite struct ListFastPathTests {
    let base = RenderedPageCacheTests()

    final class Flag: Sendable {
        let isSet = Atomic<Bool>(false)
    }

    /// The answer to `query`, and whether it was ready before `Task.immediate` returned: the
    /// request never suspended.
    func listed(
        _ service: ExecutionsService, _ query: String, client: GatewayClient = .anonymous, bypassCache: Bool = false
    ) async -> (outcome: Result<ExecutionsAnswer, Problem>, withoutSuspending: Bool) {
        let facts = bypassCache ? base.noCache : base.facts
        let answered = Flag()
        let task = Task.immediate {
            let outcome = await service.list(parseQueryItems(query), rawQuery: query, client: client, facts: facts)
            answered.isSet.store(true, ordering: .relaxed)
            return outcome
        }
        let withoutSuspending = answered.isSet.load(ordering: .relaxed)
        return (await task.value, withoutSuspending)
    }

    @Test func aStoredFreshPageIsAnsweredWithoutSuspending() async throws {
        let (a, b) = base.providers()
        let service = base.service([a, b])
        let built = try await listed(service, "limit=4").outcome.get()
        #expect(built.cache == .miss)
        let (outcome, withoutSuspending) = await listed(service, "limit=4")
        let hit = try outcome.get()
        #expect(withoutSuspending)
        #expect(hit.cache == .hit)
        #expect(hit.entityTag == built.entityTag)
        #expect(hit.nextCursor == built.nextCursor)
        #expect(try base.document(hit)["data"] == base.document(built)["data"])
        // A query string spelled differently reaches the same page.
        #expect(try await listed(service, "allowPartial=true&limit=4").outcome.get().cache == .hit)
        #expect(a.listCalls == 1 && b.listCalls == 1)
        #expect(service.pageCacheStatistics?.misses == 1)
        #expect(service.pageCacheStatistics?.hits == 2)
        #expect(try await listed(service, "limit=4", bypassCache: true).outcome.get().cache != .hit)
        base.clock.advance(milliseconds: 5_000)
        #expect(try await listed(service, "limit=4").outcome.get().cache == .miss)
        #expect(service.pageCacheStatistics?.misses == 2)
    }

    @Test func invalidRequestsAreRefusedWithoutSuspending() async throws {
        let (a, b) = base.providers()
        let service = base.service([a, b])
        let (invalid, invalidAtOnce) = await listed(service, "limit=0")
        guard case .failure(let problem) = invalid else {
            Issue.record("limit=0 was not refused")
            return
        }
        #expect(problem.status == .badRequest)
        #expect(invalidAtOnce)
        let (refused, refusedAtOnce) = await listed(
            service, "provider=b", client: GatewayClient(id: "web", allowedProviders: ["a"], upstreamCredentials: [:])
        )
        guard case .failure(let forbidden) = refused else {
            Issue.record("a forbidden provider was not refused")
            return
        }
        #expect(forbidden.status == .forbidden)
        #expect(refusedAtOnce)
    }

    /// The memo is keyed by the whole client: a client reloaded with fewer providers, or with its
    /// own upstream credential, never reuses the plan (or the page) of its former self.
    @Test func aChangedClientNeverReusesARememberedPlan() async throws {
        let (a, b) = base.providers()
        let service = base.service([a, b])
        let before = GatewayClient(id: "web", allowedProviders: nil, upstreamCredentials: [:])
        _ = try await listed(service, "", client: before).outcome.get()
        #expect(try await listed(service, "", client: before).outcome.get().cache == .hit)

        let narrowed = GatewayClient(id: "web", allowedProviders: ["a"], upstreamCredentials: [:])
        #expect(try await listed(service, "", client: narrowed).outcome.get().cache == .miss)
        guard case .failure(let forbidden) = await listed(service, "provider=b", client: narrowed).outcome else {
            Issue.record("the narrowed client was allowed provider b")
            return
        }
        #expect(forbidden.status == .forbidden)

        let ownCredential = GatewayClient(id: "web", allowedProviders: nil, upstreamCredentials: ["a": UpstreamCredential(secret: "web-own-key")])
        #expect(try await listed(service, "", client: ownCredential).outcome.get().cache == .miss)
    }

    @Test func theMemoStaysBounded() {
        let memo = ListPlanMemo()
        let plan = ExecutionsService.ListPlan(
            parsed: ParsedListParameters(query: ListQuery(), given: [], cursor: nil),
            query: ListQuery(), states: [], pageKey: nil
        )
        for index in 0..<(ListPlanMemo.capacity * 3) {
            memo.remember(plan, for: "limit=\(index)", client: .anonymous)
            #expect(memo.count <= ListPlanMemo.capacity)
        }
        let long = String(repeating: "x", count: ListPlanMemo.maxQueryBytes + 1)
        memo.remember(plan, for: long, client: .anonymous)
        #expect(memo.plan(for: long, client: .anonymous) == nil)
        memo.remember(plan, for: "limit=7", client: .anonymous)
        #expect(memo.plan(for: "limit=7", client: .anonymous) != nil)
        #expect(memo.plan(for: "limit=7", client: GatewayClient(id: "other", allowedProviders: nil, upstreamCredentials: [:])) == nil)
    }

    // MARK: - Prepared hit answers

    @Test func repeatedHitsHandOutOneRenderingOfTheStoredPage() async throws {
        let (a, b) = base.providers()
        let service = base.service([a, b])
        _ = try await service.list([("limit", "4")], client: .anonymous, facts: base.facts).get()
        let first = try await listed(service, "limit=4").outcome.get()
        let second = try await listed(service, "limit=4").outcome.get()
        #expect(PreparedHits.sameStorage(first.body, second.body))
        let shared = try #require(first.sharedResponse)
        #expect(second.sharedResponse === shared)
        #expect(service.pageCacheStatistics?.hits == 2)
    }

    @Test func aPageStoredAgainIsAnsweredFromItsNewValue() async throws {
        let (a, b) = base.providers()
        let service = base.service([a, b])
        let built = try await service.list([("limit", "4")], client: .anonymous, facts: base.facts).get()
        let before = try await listed(service, "limit=4").outcome.get()
        #expect(try base.document(before)["data"] == base.document(built)["data"])

        // The page expires; the rebuilt one (a newer execution first) replaces it in the store.
        b.insert(makeExecution(provider: "b", id: "b9", second: 99, status: .succeeded))
        base.clock.advance(milliseconds: 5_000)
        let rebuilt = try await listed(service, "limit=4").outcome.get()
        #expect(rebuilt.cache == .miss)
        let after = try await listed(service, "limit=4").outcome.get()
        #expect(try base.document(after)["data"] == base.document(rebuilt)["data"])
        #expect(try base.document(after)["data"]?.arrayValue?.first?["providerExecutionId"]?.stringValue == "b9")
        #expect(after.sharedResponse !== before.sharedResponse)
        #expect(after.entityTag != before.entityTag)
    }

    @Test func preparedAnswersStayWithinTheirBudgetOldestOut() {
        let answer = { (size: Int) in
            ExecutionsAnswer(body: [UInt8](repeating: 0x20, count: size), entityTag: "W/\"x\"", cache: .hit, nextCursor: nil)
        }
        let perEntry = 1_000 + 1_000 + 2 + PreparedHits.perEntryOverheadBytes
        let hits = PreparedHits(budgetBytes: 3 * perEntry)
        var sources: [String: [UInt8]] = [:]
        for index in 0..<10 {
            let key = "k\(index % 5)"
            let source = [UInt8](repeating: UInt8(index), count: 1_000)
            sources[key] = source
            hits.remember(answer(1_000), for: key, source: source)
            #expect(hits.usage.bytes <= hits.budgetBytes)
            #expect(hits.usage.entries <= 3)
        }
        // The three remembered last are kept; older ones are gone.
        #expect(hits.answer(for: "k4", source: sources["k4"] ?? []) != nil)
        #expect(hits.answer(for: "k3", source: sources["k3"] ?? []) != nil)
        #expect(hits.answer(for: "k2", source: sources["k2"] ?? []) != nil)
        #expect(hits.answer(for: "k1", source: sources["k1"] ?? []) == nil)
        // Equal bytes in other storage are not the same stored value.
        let copy = (sources["k4"] ?? []).map { $0 }
        #expect(copy == sources["k4"])
        #expect(hits.answer(for: "k4", source: copy) == nil)

        let tooLarge = PreparedHits(budgetBytes: perEntry - 1)
        tooLarge.remember(answer(1_000), for: "k4", source: sources["k4"] ?? [])
        #expect(tooLarge.usage.entries == 0 && tooLarge.usage.bytes == 0)
    }
}
