import GatewayHTTP
import GatewayJSON
public import Logging

/// Kaizen (`api.kaizenautomation.com`): `POST /executions/list` with a JSON filter returns every
/// match at once; `POST /executions/get {"id"}` returns the detail record.
///
/// The list has no paging, so the cursor position is never sent upstream: one list request
/// (cached for the list TTL) serves every page of a walk, and the position, the filter and the
/// order are applied here.
public struct KaizenProvider: UpstreamBackedProvider {
    public let name: String
    public var type: String { "kaizen" }
    public var joinableFields: Set<JoinableField> { [.downloads, .startBlock] }
    public let fetcher: ProviderFetcher
    /// The largest list answer `fullList` reads (`providers[].maxListAnswerBytes`).
    public let maxListAnswerBytes: Int
    private let logger: Logger

    /// `providers[].maxListAnswerBytes` when the configuration does not set it: far above any
    /// organisation seen (about 1.1 KB per execution), while still refusing a runaway answer.
    public static let defaultMaxListAnswerBytes = 1_073_741_824
    /// The largest single execution record `fullList` reads; a record is about 1.1 KB, so one of a
    /// mebibyte is not an execution but a broken or hostile answer.
    public static let maxListRecordBytes = 1_048_576

    public init(
        name: String, fetcher: ProviderFetcher, maxListAnswerBytes: Int = KaizenProvider.defaultMaxListAnswerBytes,
        logger: Logger = Logger(label: "gateway.providers.kaizen")
    ) {
        self.name = name
        self.fetcher = fetcher
        self.maxListAnswerBytes = maxListAnswerBytes
        self.logger = logger
    }

    // MARK: - Listing

    public func executions(
        matching filter: ExecutionFilter,
        after position: ProviderPosition?,
        limit: Int,
        call: UpstreamCallContext
    ) async throws(ProviderError) -> ProviderPage {
        guard limit > 0 else { return .nothingRequested }
        guard mayHoldMatches(filter), let body = listBody(for: filter) else { return .noMatches() }
        let source = KaizenListSource(provider: self, body: body, call: call)
        return try await KeysetMerge.page(
            sources: [source], after: filter.effectiveBoundary(after: position), filter: filter, limit: limit
        )
    }

    public func mayHoldMatches(_ filter: ExecutionFilter) -> Bool {
        if filter.isUnsatisfiable { return false }
        if let statuses = filter.statuses, statuses.allSatisfy({ Self.nativeStatus(for: $0) == nil }) { return false }
        return true
    }

    /// The upstream filter for `filter`, or nil when no Kaizen execution can match (no call needed).
    func listBody(for filter: ExecutionFilter) -> JSONValue? {
        if filter.isUnsatisfiable { return nil }
        var body = JSONObject()
        if let statuses = filter.statuses {
            let native = Set(statuses.compactMap(Self.nativeStatus(for:)))
            if native.isEmpty { return nil }
            // The list takes one status; for several the filter is applied here.
            if native.count == 1, let only = native.first { body["status"] = .string(only) }
        }
        if let workflowID = filter.workflowID { body["workflowId"] = .string(workflowID) }
        let terms = filter.searchTermsForUpstream(providerName: name)
        if !terms.isEmpty { body["search"] = .array(terms.map(JSONValue.string)) }
        if let isTest = filter.isTest { body["isTest"] = .bool(isTest) }
        if let createdAfter = filter.createdAfter { body["fromTs"] = .string(createdAfter.rfc3339) }
        if let createdBefore = filter.createdBefore { body["toTs"] = .string(createdBefore.rfc3339) }
        return .object(body)
    }

    func list(body: JSONValue, call: UpstreamCallContext) async throws(ProviderError) -> Fetched<[UnifiedExecution]> {
        let request = ProviderRequest(method: .post, path: "/executions/list", jsonBody: body)
        let skipped = SkippedRecordLog(logger: logger, provider: name, requestID: call.requestID)
        return try await fetcher.fetchListing(
            request, call: call, decode: { json throws(ProviderError) in try Self.listAnswer(json, skipped: skipped) }
        )
    }

    static func listAnswer(_ json: JSONValue, skipped: SkippedRecordLog) throws(ProviderError) -> [UnifiedExecution] {
        let root = try json.requiredObject("the list answer")
        guard let items = root["executions"]?.arrayValue else {
            throw .malformedResponse(reason: "the list answer has no 'executions' array")
        }
        var executions: [UnifiedExecution] = []
        executions.reserveCapacity(items.count)
        for item in items {
            if let execution = skipped.readable(item, { item throws(ProviderError) in try execution(from: item, provider: skipped.provider) }) {
                executions.append(execution)
            }
        }
        return executions
    }

    /// Every execution of the organisation (no filter), read as a stream; raw records are not kept.
    ///
    /// For an index that holds the whole organisation: the answer may reach `maxListAnswerBytes`
    /// and is never held whole nor cached; each record is mapped as it completes and only its
    /// list-level fields are kept (`raw` is `.null`). Unreadable records are skipped and logged,
    /// as in a page; a truncated, malformed or oversize answer is an error.
    /// - Parameter since: only executions started at or after this instant (Kaizen's `fromTs`):
    ///   what a refresh between two full ones reads.
    public func fullList(since: Timestamp? = nil, call: UpstreamCallContext) async throws(ProviderError) -> KaizenFullList {
        let listing = try await streamFullList(since: since, call: call) { $0 }
        return KaizenFullList(
            executions: listing.elements, skippedRecords: listing.elementsRead - listing.elements.count,
            answerBytes: listing.answerBytes, peakBufferedBytes: listing.peakBufferedBytes)
    }

    /// `fullList` handing each execution to `receive` as soon as it is read, in answer order,
    /// and keeping none: for a reader that stores them its own way (an index), so that the
    /// organisation is never held a second time as unified records. When the read fails, what
    /// was received is not the whole list and must be dropped. Returns the executions received.
    @discardableResult
    public func fullList(
        since: Timestamp? = nil, call: UpstreamCallContext, receive: @escaping @Sendable (UnifiedExecution) -> Void
    ) async throws(ProviderError) -> Int {
        // Each kept element is `Void` (a byte): only the count remains.
        try await streamFullList(since: since, call: call) { receive($0) }.elements.count
    }

    private func streamFullList<Element: Sendable>(
        since: Timestamp?, call: UpstreamCallContext, keep: @escaping @Sendable (UnifiedExecution) -> Element
    ) async throws(ProviderError) -> StreamedListing<Element> {
        var body = JSONObject()
        if let since { body["fromTs"] = .string(since.rfc3339) }
        let request = ProviderRequest(method: .post, path: "/executions/list", jsonBody: .object(body))
        let skipped = SkippedRecordLog(logger: logger, provider: name, requestID: call.requestID)
        return try await fetcher.streamListing(
            request, call: call, arrayAt: .member("executions"), maxAnswerBytes: maxListAnswerBytes,
            maxElementBytes: Self.maxListRecordBytes
        ) { item -> Element? in
            guard var execution = skipped.readable(item, { item throws(ProviderError) in try Self.execution(from: item, provider: skipped.provider) })
            else { return nil }
            execution.raw = .null
            execution.sourceOffset = nil
            return keep(execution)
        }
    }

    // MARK: - Detail

    public func detail(of providerExecutionID: String, call: UpstreamCallContext) async throws(ProviderError) -> ExecutionDetail {
        let request = ProviderRequest(method: .post, path: "/executions/get", jsonBody: ["id": .string(providerExecutionID)])
        let name = self.name
        return try await fetchDetail(request, call: call) { json throws(ProviderError) in try Self.detail(json, provider: name) }
    }

    /// The detail answer, as if fetched (`cache: .miss`).
    static func detail(_ json: JSONValue, provider: String) throws(ProviderError) -> ExecutionDetail {
        let record = try json.requiredObject("the detail answer").requiredRecord("execution", in: "the detail answer")
        let execution = try execution(from: record, provider: provider)
        return ExecutionDetail(
            execution: execution,
            downloads: record["downloads"] ?? .null,
            startBlock: record["startBlock"] ?? .null,
            events: nil,
            record: record,
            cache: .miss
        )
    }

    // MARK: - Mapping (docs/api.md, The unified execution)

    static func unifiedStatus(for native: String) -> ExecutionStatus? {
        switch native {
        case "Enqueued": .queued
        case "InProgress": .running
        case "Paused": .paused
        case "Completed": .succeeded
        case "Failed": .failed
        default: nil
        }
    }

    static func nativeStatus(for status: ExecutionStatus) -> String? {
        switch status {
        case .queued: "Enqueued"
        case .running: "InProgress"
        case .paused: "Paused"
        case .succeeded: "Completed"
        case .failed: "Failed"
        case .waiting, .cancelled: nil
        }
    }

    /// A list item or detail record in the unified shape; `raw` keeps the record as sent.
    static func execution(from value: JSONValue, provider: String) throws(ProviderError) -> UnifiedExecution {
        let record = try value.requiredObject("an execution")
        let id = try record.requiredID("id", in: "an execution")
        let startTime = try record.requiredTimestamp("startTime", of: id)
        let providerStatus = record.string("status")
        let status = providerStatus.flatMap(unifiedStatus(for:))
        // Only a finished execution has ended; its end time is Kaizen's.
        let isFinished = providerStatus == "Completed" || providerStatus == "Failed"
        let endedAt = isFinished ? record.timestamp("endTime") : nil
        let durationMs = isFinished ? (record.nonNegativeInteger("durationMs") ?? elapsedMilliseconds(from: startTime, to: endedAt)) : nil
        return UnifiedExecution(
            provider: provider,
            providerExecutionID: id,
            workflow: record.workflowReference("workflow"),
            name: record.string("name"),
            status: status,
            providerStatus: providerStatus,
            createdAt: startTime,
            startedAt: startTime,
            endedAt: endedAt,
            durationMs: durationMs,
            isTest: record.bool("isTest"),
            attempts: record.nonNegativeInteger("attempts"),
            searchableValues: record["params"]?.searchableTexts ?? [],
            raw: value
        )
    }
}

/// What `KaizenProvider.fullList` read.
public struct KaizenFullList: Sendable {
    /// In answer order, each with `raw` = `.null`.
    public var executions: [UnifiedExecution]
    /// Records that could not be read (logged one by one).
    public var skippedRecords: Int
    /// The size of the answer's body.
    public var answerBytes: Int
    /// The most answer bytes that waited at once between the HTTP client and the parser.
    var peakBufferedBytes: Int

    public init(executions: [UnifiedExecution], skippedRecords: Int, answerBytes: Int) {
        self.init(executions: executions, skippedRecords: skippedRecords, answerBytes: answerBytes, peakBufferedBytes: 0)
    }

    init(executions: [UnifiedExecution], skippedRecords: Int, answerBytes: Int, peakBufferedBytes: Int) {
        self.executions = executions
        self.skippedRecords = skippedRecords
        self.answerBytes = answerBytes
        self.peakBufferedBytes = peakBufferedBytes
    }
}

/// Kaizen's whole answer as one chunk.
struct KaizenListSource: ExecutionChunkSource {
    let provider: KaizenProvider
    let body: JSONValue
    let call: UpstreamCallContext

    mutating func nextChunk() async throws(ProviderError) -> ExecutionChunk {
        let fetched = try await provider.list(body: body, call: call)
        return ExecutionChunk(executions: fetched.value, mayHaveMore: false, cache: fetched.cache)
    }
}
