import GatewayCache
import GatewayJSON
@testable import GatewayProviders
import GatewayUpstream
import Synchronization
import Testing

/// The pieces the adapters share, where the simulator cannot produce the case: upstreams that
/// order executions of one instant differently from the gateway, and configuration mistakes.
@Suite struct AdapterBuildingBlockTests {
    static func execution(_ id: String, second: Int64, provider: String = "p") -> UnifiedExecution {
        UnifiedExecution(
            provider: provider, providerExecutionID: id, workflow: nil, name: nil, status: .running, providerStatus: "running",
            createdAt: Timestamp(nanosecondsSinceEpoch: second * 1_000_000_000), startedAt: nil, endedAt: nil, durationMs: nil,
            isTest: nil, attempts: nil, searchableValues: [], raw: .null
        )
    }

    /// Hands out prepared chunks in order and counts how many were asked for.
    struct PreparedChunks: ExecutionChunkSource {
        let chunks: [[UnifiedExecution]]
        let reads: ReadCount
        private var next = 0

        init(_ chunks: [[UnifiedExecution]], reads: ReadCount = ReadCount()) {
            self.chunks = chunks
            self.reads = reads
        }

        mutating func nextChunk() async throws(ProviderError) -> ExecutionChunk {
            reads.count.add(1, ordering: .relaxed)
            defer { next += 1 }
            return ExecutionChunk(executions: chunks[next], mayHaveMore: next + 1 < chunks.count, cache: .miss)
        }
    }

    final class ReadCount: Sendable {
        let count = Atomic<Int>(0)
        var value: Int { count.load(ordering: .relaxed) }
    }

    @Test func executionsOfOneInstantSplitAcrossChunksComeOutInIdOrder() async throws {
        // The upstream lists the 10-second tie as a, c | b: not the gateway's id order.
        let chunks = [
            [Self.execution("a", second: 10), Self.execution("c", second: 10)],
            [Self.execution("b", second: 10), Self.execution("d", second: 9)],
            [Self.execution("e", second: 8)],
        ]
        let first = try await KeysetMerge.page(sources: [PreparedChunks(chunks)], after: nil, filter: ExecutionFilter(), limit: 1)
        #expect(first.executions.map(\.providerExecutionID) == ["c"])
        #expect(!first.exhausted)
        let rest = try await KeysetMerge.page(
            sources: [PreparedChunks(chunks)], after: Self.execution("c", second: 10).sortKey, filter: ExecutionFilter(), limit: 10
        )
        #expect(rest.executions.map(\.providerExecutionID) == ["b", "a", "d", "e"])
        #expect(rest.exhausted)
    }

    @Test func sourcesAreReadOnlyAsFarAsThePageNeeds() async throws {
        let newer = ReadCount()
        let older = ReadCount()
        let page = try await KeysetMerge.page(
            sources: [
                PreparedChunks([[Self.execution("n1", second: 50), Self.execution("n2", second: 40)], [Self.execution("n3", second: 30)]], reads: newer),
                PreparedChunks([[Self.execution("o1", second: 20)], [Self.execution("o2", second: 10)]], reads: older),
            ],
            after: nil, filter: ExecutionFilter(), limit: 2
        )
        #expect(page.executions.map(\.providerExecutionID) == ["n1", "n2"])
        #expect(!page.exhausted)
        // n2 settles only once the newer source's next chunk shows nothing else at its instant;
        // the older source, whose unread part is older still, is not read again.
        #expect(newer.value == 2)
        #expect(older.value == 1)
    }

    @Test func repeatedExecutionsAreDroppedAndTheFilterApplies() async throws {
        let chunks = [
            [Self.execution("x3", second: 30), Self.execution("x2", second: 20)],
            [Self.execution("x2", second: 20), Self.execution("y1", second: 10)],
        ]
        let page = try await KeysetMerge.page(
            sources: [PreparedChunks(chunks)], after: nil, filter: ExecutionFilter(searchTerms: ["x"]), limit: 10
        )
        #expect(page.executions.map(\.providerExecutionID) == ["x3", "x2"])
        #expect(page.exhausted)
    }

    @Test func effectiveBoundaryIsTheLaterOfPositionAndCreatedBefore() throws {
        let instant = Timestamp(nanosecondsSinceEpoch: 5_000_000_000)
        let filter = ExecutionFilter(createdBefore: instant)
        let bound = try #require(filter.effectiveBoundary(after: nil))
        #expect(bound.precedes(Self.execution("z", second: 5).sortKey))
        #expect(!bound.precedes(ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: 5_000_000_001), id: "p:a")))
        let earlyPosition = ProviderPosition(last: ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: 9_000_000_000), id: "p:x"))
        #expect(filter.effectiveBoundary(after: earlyPosition) == bound)
        let latePosition = ProviderPosition(last: ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: 1_000_000_000), id: "p:x"))
        #expect(filter.effectiveBoundary(after: latePosition) == latePosition.last)
        #expect(ExecutionFilter().effectiveBoundary(after: nil) == nil)
    }

    @Test(arguments: [
        (["INV-2025"], ["INV-2025"]),
        (["ex_12", "Müller"], ["ex_12", "Müller"]),
        (["kaizen:ex_1"], []),
        (["zen:"], []),
        (["aize"], []),
        (["n:ex"], []),
        ([":"], []),
        (["KAIZEN"], []),
        ([""], []),
        (["ok", "en:e"], []),
    ])
    func searchTermsGoUpstreamOnlyWhenTheyCannotMatchTheNamePrefix(_ terms: [String], _ upstream: [String]) {
        #expect(ExecutionFilter(searchTerms: terms).searchTermsForUpstream(providerName: "kaizen") == upstream)
    }

    @Test func searchableTextsFlattenEveryScalar() throws {
        let value = try JSONParser.parse(#"{"a":"Zoë","n":12,"d":1.5,"b":true,"z":null,"list":["x",{"deep":"y"}]}"#)
        #expect(value.searchableTexts == ["Zoë", "12", "1.5", "true", "x", "y"])
    }

    // MARK: - Factory

    /// The factory builds without sending anything; the client is real all the same.
    static let client: CurlHTTPClient? = try? CurlHTTPClient(configuration: CurlHTTPClientConfiguration())

    static func endpoint() throws -> UpstreamEndpoint {
        UpstreamEndpoint(name: "t", policy: UpstreamPolicy(), transport: try #require(client))
    }

    static func make(name: String = "p", type: ProviderType, baseURL: String = "https://api.example.com/v1/", workflowIDs: [String] = [], organizationID: String? = nil) throws -> any UpstreamBackedProvider {
        try ProviderFactory.make(
            name: name, type: type, baseURL: baseURL, workflowIDs: workflowIDs, organizationID: organizationID,
            endpoint: try endpoint(), cache: ResponseCache(store: MemoryLRUStore(maxBytes: 1024)), cachePolicy: ProviderCachePolicy()
        )
    }

    @Test func theFactoryBuildsEachTypeWithItsCredentialPlacement() throws {
        let kaizen = try Self.make(type: .kaizen)
        #expect(kaizen is KaizenProvider && kaizen.type == "kaizen" && kaizen.fetcher.credentialPlacement == .bearer)
        #expect(kaizen.fetcher.baseURL == "https://api.example.com/v1")
        let kapso = try Self.make(name: "kapso-eu", type: .kapso, workflowIDs: ["wf_1"])
        #expect((kapso as? KapsoProvider)?.configuredWorkflowIDs == ["wf_1"])
        #expect(kapso.fetcher.credentialPlacement == .header(name: "X-API-Key"))
        #expect(kapso.name == "kapso-eu")
        let b3os = try Self.make(type: .b3os, organizationID: "org_1")
        #expect(b3os.fetcher.organizationID == "org_1" && b3os.fetcher.credentialPlacement == .bearer)
    }

    @Test func theFactoryRefusesSettingsItCannotUse() {
        for url in ["ftp://api.example.com", "api.example.com", "https://user:pw@api.example.com", "https://api.example.com/?x=1", "https://", "https://api.example.com/a b", "https://api.example.com/#f"] {
            #expect(throws: ProviderConfigurationError.invalidBaseURL(provider: "p", baseURL: url)) { try Self.make(type: .kaizen, baseURL: url) }
        }
        #expect(throws: ProviderConfigurationError.invalidName(provider: "a:b")) { try Self.make(name: "a:b", type: .kaizen) }
        #expect(throws: ProviderConfigurationError.invalidName(provider: "")) { try Self.make(name: "", type: .kaizen) }
        #expect(throws: ProviderConfigurationError.settingNotApplicable(provider: "p", setting: "workflowIds", type: "b3os")) {
            try Self.make(type: .b3os, workflowIDs: ["wf"])
        }
        #expect(throws: ProviderConfigurationError.settingNotApplicable(provider: "p", setting: "orgId", type: "kapso")) {
            try Self.make(type: .kapso, organizationID: "org")
        }
    }

    @Test func theFactoryAppliesTheConfigurationsProviderNameRule() throws {
        // The validator's rule (ProviderName): a token of at most 64 characters, no ":" or space.
        for name in ["a b", "kapso/eu", String(repeating: "k", count: 65), "kaizén"] {
            #expect(!ProviderName.isValid(name))
            #expect(throws: ProviderConfigurationError.invalidName(provider: name)) { try Self.make(name: name, type: .kaizen) }
        }
        for name in ["kapso-eu.v2_1", String(repeating: "k", count: 64)] {
            #expect(ProviderName.isValid(name))
            #expect(try Self.make(name: name, type: .kaizen).name == name)
        }
    }

    @Test func upstreamErrorsMapWithoutBodiesOrHeaders() throws {
        let fetcher = try Self.make(type: .kaizen).fetcher
        let secretBody = Array("Bearer sk_live_123".utf8)
        #expect(fetcher.mapError(.httpStatus(status: 500, body: secretBody, retryAfterSeconds: nil), purpose: .list) == .upstreamStatus(status: 500, detail: "Internal Server Error"))
        #expect(fetcher.mapError(.httpStatus(status: 404, body: secretBody, retryAfterSeconds: nil), purpose: .detail) == .notFound)
        #expect(fetcher.mapError(.httpStatus(status: 404, body: [], retryAfterSeconds: nil), purpose: .list) == .upstreamStatus(status: 404, detail: "Not Found"))
        #expect(fetcher.mapError(.httpStatus(status: 503, body: [], retryAfterSeconds: 0), purpose: .list) == .paused(retryAfterSeconds: 1))
        #expect(fetcher.mapError(.bodyTooLarge(limitBytes: 10), purpose: .list) == .malformedResponse(reason: "the answer is larger than 10 bytes"))
        #expect(fetcher.mapError(.timeout, purpose: .detail) == .timeout)
        for error in [UpstreamError.overloaded, .cancelled, .shutdown, .clientUnavailable(reason: "x"), .invalidRequest(reason: "y"), .connection(reason: "refused")] {
            guard case .unreachable = fetcher.mapError(error, purpose: .list) else {
                Issue.record("\(error) should be unreachable")
                continue
            }
        }
    }
}
