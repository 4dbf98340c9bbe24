import GatewayHTTP
import GatewayJSON
public import Logging

/// B3OS (`api.b3os.org`): `GET /v1/executions?limit&offset`, newest `createdAt` first, no server
/// filters; `GET /v1/executions/{id}` → `{code, data: {execution, events}}`.
///
/// Offsets move as executions are created (rows shift down) or removed (rows shift up), so an
/// offset is only ever a hint: windows of 100 are read from a little before the hint, the place is
/// found by sort key, and a window that may have skipped rows (its first row is neither one already
/// read nor newer than everything read) makes the reader step back. A row is therefore never
/// skipped; rows read twice are dropped by id.
public struct B3OSProvider: UpstreamBackedProvider {
    public let name: String
    public var type: String { "b3os" }
    public var joinableFields: Set<JoinableField> { [.events] }
    public let fetcher: ProviderFetcher
    private let logger: Logger

    /// The largest `limit` B3OS accepts, to read as much as possible per call.
    public static let windowSize = 100
    /// Rows re-read before a hint or the previous window's end, to recognise the place again.
    static let overlap = 10

    public init(name: String, fetcher: ProviderFetcher, logger: Logger = Logger(label: "gateway.providers.b3os")) {
        self.name = name
        self.fetcher = fetcher
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
        guard mayHoldMatches(filter) else { return .noMatches() }
        let boundary = filter.effectiveBoundary(after: position)
        let source = B3OSListingSource(
            provider: self, boundaryInstant: boundary?.createdAt, offsetHint: position?.offsetHint,
            stopBefore: filter.createdAfter, call: call
        )
        return try await KeysetMerge.page(sources: [source], after: boundary, filter: filter, limit: limit)
    }

    public func mayHoldMatches(_ filter: ExecutionFilter) -> Bool {
        // B3OS has no test runs; every unified status but `paused` has a B3OS counterpart.
        if filter.isUnsatisfiable || filter.isTest == true { return false }
        if let statuses = filter.statuses, statuses.allSatisfy({ Self.nativeStatuses(for: $0).isEmpty }) { return false }
        return true
    }

    struct Window: Sendable {
        /// In listing order, each with its `sourceOffset`.
        var executions: [UnifiedExecution]
        /// Rows in the answer, readable or skipped: how far the window moves the offset.
        var rowCount: Int
        var hasMore: Bool
    }

    func window(at offset: Int, call: UpstreamCallContext) async throws(ProviderError) -> Fetched<Window> {
        let request = ProviderRequest(
            path: "/v1/executions", query: [("limit", String(Self.windowSize)), ("offset", String(offset))]
        )
        let skipped = SkippedRecordLog(logger: logger, provider: name, requestID: call.requestID)
        return try await fetcher.fetchListing(
            request, call: call, decode: { json throws(ProviderError) in try Self.window(json, offset: offset, skipped: skipped) }
        )
    }

    /// The list answer for the window read at `offset`.
    /// A row that cannot be read is skipped; the others keep their own offsets.
    static func window(_ json: JSONValue, offset: Int, skipped: SkippedRecordLog) throws(ProviderError) -> Window {
        let data = try envelopeData(json, what: "the list answer")
        guard let items = data["items"]?.arrayValue else {
            throw .malformedResponse(reason: "the list answer has no 'data.items' array")
        }
        var executions: [UnifiedExecution] = []
        executions.reserveCapacity(items.count)
        for (index, item) in items.enumerated() {
            let read = skipped.readable(item) { item throws(ProviderError) in try execution(from: item, provider: skipped.provider) }
            guard var execution = read else { continue }
            // A window read near Int.max (a hostile `hasMore` sends the locator that far) has
            // rows whose offsets do not exist: they get no hint rather than a trap.
            let (rowOffset, overflow) = offset.addingReportingOverflow(index)
            execution.sourceOffset = overflow ? nil : rowOffset
            executions.append(execution)
        }
        let hasMore = data.bool("hasMore") ?? (items.count >= windowSize)
        return Window(executions: executions, rowCount: items.count, hasMore: hasMore && !items.isEmpty)
    }

    /// `data` of B3OS's `{code, data, message, requestId}` envelope.
    static func envelopeData(_ json: JSONValue, what: String) throws(ProviderError) -> JSONObject {
        let root = try json.requiredObject(what)
        guard let data = root.object("data") else { throw .malformedResponse(reason: "\(what) has no 'data' object") }
        return data
    }

    // MARK: - Detail

    public func detail(of providerExecutionID: String, call: UpstreamCallContext) async throws(ProviderError) -> ExecutionDetail {
        let request = ProviderRequest(path: "/v1/executions/" + percentEncode(providerExecutionID))
        let name = self.name
        return try await fetchDetail(request, call: call) { json throws(ProviderError) in try Self.detail(json, provider: name) }
    }

    /// The detail answer, as if fetched (`cache: .miss`).
    static func detail(_ json: JSONValue, provider: String) throws(ProviderError) -> ExecutionDetail {
        let data = try envelopeData(json, what: "the detail answer")
        let record = try data.requiredRecord("execution", in: "the detail answer", path: "data.execution")
        return ExecutionDetail(
            execution: try execution(from: record, provider: provider), downloads: nil, startBlock: nil,
            events: data["events"] ?? .null, record: .object(data), cache: .miss
        )
    }

    // MARK: - Mapping (docs/api.md, The unified execution)

    static func unifiedStatus(for native: String) -> ExecutionStatus? {
        switch native {
        case "payment_confirmed", "workflow_queued": .queued
        case "workflow_running": .running
        case "awaiting_payment", "workflow_waiting": .waiting
        case "workflow_succeeded": .succeeded
        case "workflow_failed": .failed
        case "workflow_cancelled": .cancelled
        default: nil
        }
    }

    static func nativeStatuses(for status: ExecutionStatus) -> [String] {
        switch status {
        case .queued: ["payment_confirmed", "workflow_queued"]
        case .running: ["workflow_running"]
        case .waiting: ["awaiting_payment", "workflow_waiting"]
        case .succeeded: ["workflow_succeeded"]
        case .failed: ["workflow_failed"]
        case .cancelled: ["workflow_cancelled"]
        case .paused: []
        }
    }

    /// B3OS has no execution name, workflow name, test flag or attempts: those stay null.
    static func execution(from value: JSONValue, provider: String) throws(ProviderError) -> UnifiedExecution {
        let record = try value.requiredObject("an execution")
        let id = try record.requiredID("id", in: "an execution")
        let createdAt = try record.requiredTimestamp("createdAt", of: id)
        let startedAt = record.timestamp("startedAt")
        let finishedAt = record.timestamp("finishedAt")
        let providerStatus = record.string("status")
        return UnifiedExecution(
            provider: provider,
            providerExecutionID: id,
            workflow: record.string("workflowId").map { WorkflowReference(id: $0, name: nil) },
            name: nil,
            status: providerStatus.flatMap(unifiedStatus(for:)),
            providerStatus: providerStatus,
            createdAt: createdAt,
            startedAt: startedAt,
            endedAt: finishedAt,
            durationMs: elapsedMilliseconds(from: startedAt, to: finishedAt),
            isTest: nil,
            attempts: nil,
            searchableValues: record["requestPayload"]?.searchableTexts ?? [],
            raw: value
        )
    }
}

/// B3OS's listing read in windows of 100 from the place the position names.
public struct B3OSListingSource: ExecutionChunkSource {
    let provider: B3OSProvider
    /// Everything created after this instant lies before the boundary; nil: from the start.
    let boundaryInstant: Timestamp?
    let offsetHint: Int?
    /// `createdAfter`: once a window reaches older executions, nothing further can match.
    let stopBefore: Timestamp?
    let call: UpstreamCallContext

    private var nextOffset: Int?
    /// The oldest instant read and the ids read, to tell whether a window joins on to what was read.
    private var oldestRead: Timestamp?
    private var seen: Set<String> = []
    private var stepsBack = 0

    /// Bounds the steps back taken for one page, so a listing that shifts without end cannot hold
    /// the request. Steps grow geometrically, so even a hint near `Int.max` gets home within it.
    static let maximumStepsBack = 80

    public init(provider: B3OSProvider, boundaryInstant: Timestamp?, offsetHint: Int?, stopBefore: Timestamp?, call: UpstreamCallContext) {
        self.provider = provider
        self.boundaryInstant = boundaryInstant
        self.offsetHint = offsetHint
        self.stopBefore = stopBefore
        self.call = call
    }

    public mutating func nextChunk() async throws(ProviderError) -> ExecutionChunk {
        var cache = CacheDisposition.hit
        let window: B3OSProvider.Window
        let start: Int
        if let offset = nextOffset {
            (start, window) = try await joinedWindow(from: offset, cache: &cache)
        } else {
            (start, window) = try await locate(cache: &cache)
        }
        for execution in window.executions {
            seen.insert(execution.providerExecutionID)
            if oldestRead.map({ execution.createdAt < $0 }) ?? true { oldestRead = execution.createdAt }
        }
        var mayHaveMore = window.hasMore
        if let stopBefore, let last = window.executions.last, last.createdAt < stopBefore { mayHaveMore = false }
        let (next, overflow) = start.addingReportingOverflow(max(1, window.rowCount - B3OSProvider.overlap))
        if overflow { mayHaveMore = false }
        nextOffset = next
        return ExecutionChunk(executions: window.executions, mayHaveMore: mayHaveMore, cache: cache)
    }

    private func read(_ offset: Int, cache: inout CacheDisposition) async throws(ProviderError) -> B3OSProvider.Window {
        let fetched = try await provider.window(at: offset, call: call)
        cache = cache.merged(with: fetched.cache)
        return fetched.value
    }

    /// An earlier offset: a window back, then twice as far each time; from past the end of the
    /// listing (an empty window), a quarter of the way.
    private mutating func stepBack(from start: Int, after window: B3OSProvider.Window, distance: inout Int) throws(ProviderError) -> Int {
        stepsBack += 1
        if stepsBack > Self.maximumStepsBack {
            throw .malformedResponse(reason: "the listing kept shifting; no consistent place found after \(Self.maximumStepsBack) steps back")
        }
        if window.rowCount == 0 { return start / 4 }
        let target = start > distance ? start - distance : 0
        distance = distance > Int.max / 2 ? Int.max : distance * 2
        return target
    }

    /// The window that continues what was read: its first row was read already or is newer than
    /// everything read; otherwise rows moved up past it, and the reader steps back.
    private mutating func joinedWindow(from offset: Int, cache: inout CacheDisposition) async throws(ProviderError) -> (Int, B3OSProvider.Window) {
        var start = offset
        var distance = B3OSProvider.windowSize
        while true {
            let window = try await read(start, cache: &cache)
            if start == 0 || joinsOn(window) { return (start, window) }
            start = try stepBack(from: start, after: window, distance: &distance)
        }
    }

    private func joinsOn(_ window: B3OSProvider.Window) -> Bool {
        guard let first = window.executions.first else { return false }
        if seen.contains(first.providerExecutionID) { return true }
        guard let oldestRead else { return false }
        return first.createdAt > oldestRead
    }

    /// A window at or before the boundary: it starts at offset 0, or with an execution created
    /// after the boundary's instant, so nothing at or after the boundary lies before it.
    private func isAtOrBeforeBoundary(_ start: Int, _ window: B3OSProvider.Window, boundary: Timestamp) -> Bool {
        if start == 0 { return true }
        guard let first = window.executions.first else { return false }
        return first.createdAt > boundary
    }

    /// Whether the boundary's instant may lie in or before this window (so reading on from it is cheap).
    private func reachesBoundary(_ window: B3OSProvider.Window, boundary: Timestamp) -> Bool {
        guard window.hasMore, let last = window.executions.last else { return true }
        return last.createdAt <= boundary
    }

    /// The first window to read for a page: one at or before the boundary, as close to it as a few
    /// reads can find. From the hint (stepping back until the window is at or before the boundary)
    /// or from offset 0; then, if the boundary lies beyond that window, galloping forward and
    /// halving the gap, always keeping `low` a window at or before the boundary.
    private mutating func locate(cache: inout CacheDisposition) async throws(ProviderError) -> (Int, B3OSProvider.Window) {
        guard let boundary = boundaryInstant else { return (0, try await read(0, cache: &cache)) }

        var low = 0
        var lowWindow: B3OSProvider.Window
        if let hint = offsetHint {
            low = hint > B3OSProvider.overlap ? hint - B3OSProvider.overlap : 0
            var distance = B3OSProvider.windowSize
            while true {
                lowWindow = try await read(low, cache: &cache)
                if isAtOrBeforeBoundary(low, lowWindow, boundary: boundary) { break }
                low = try stepBack(from: low, after: lowWindow, distance: &distance)
            }
        } else {
            lowWindow = try await read(0, cache: &cache)
        }
        if reachesBoundary(lowWindow, boundary: boundary) { return (low, lowWindow) }

        var step = B3OSProvider.windowSize
        var high: Int?
        while high == nil {
            let (probe, overflow) = low.addingReportingOverflow(step)
            if overflow { throw .malformedResponse(reason: "the listing never reached the position's instant") }
            let window = try await read(probe, cache: &cache)
            if isAtOrBeforeBoundary(probe, window, boundary: boundary) {
                low = probe
                lowWindow = window
                if reachesBoundary(window, boundary: boundary) { return (low, lowWindow) }
                step = step.multipliedReportingOverflow(by: 2).overflow ? Int.max : step * 2
            } else {
                high = probe
            }
        }
        while let upper = high, upper - low > B3OSProvider.windowSize - B3OSProvider.overlap {
            let middle = low + (upper - low) / 2
            let window = try await read(middle, cache: &cache)
            if isAtOrBeforeBoundary(middle, window, boundary: boundary) {
                low = middle
                lowWindow = window
                if reachesBoundary(window, boundary: boundary) { return (low, lowWindow) }
            } else {
                high = middle
            }
        }
        return (low, lowWindow)
    }
}
