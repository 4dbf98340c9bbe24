public import GatewayJSON

/// Where a listing walk stands in one provider: the sort key of the last execution it showed,
/// plus what the provider's own paging needs to find that place again cheaply.
public struct ProviderPosition: Sendable, Equatable {
    /// The global boundary: the last execution shown on the previous page, which may belong to
    /// another provider. Adapters compare their records' unified sort keys against it.
    public var last: ExecutionSortKey
    /// Offset-paged providers: the offset just after `last` when it was read. Only a hint — the
    /// adapter verifies it against `last`, because rows shift as executions are created.
    public var offsetHint: Int?

    public init(last: ExecutionSortKey, offsetHint: Int? = nil) {
        self.last = last
        self.offsetHint = offsetHint
    }
}

/// What the caller of a provider knows about the request it is serving.
public struct UpstreamCallContext: Sendable {
    /// The credential to send upstream (the provider's, or the client's own override). Never logged.
    public var credential: String
    /// A stable, non-secret identity of `credential` (a hash) for cache keys and pause state.
    public var credentialIdentity: String
    public var requestID: String
    public var traceparent: String
    /// The client sent `Cache-Control: no-cache`: fetch, do not answer from cache.
    public var bypassCache: Bool
    /// The gateway client: each provider's concurrency limit is shared fairly between clients.
    public var clientID: String
    /// The end of the gateway request (monotonic nanoseconds), for every call it makes; nil: none.
    public var deadlineNanoseconds: UInt64?
    /// The calls the request may still make; nil: unlimited.
    public var allowance: UpstreamCallAllowance?
    /// Counts the calls that reach the network on the request's behalf (for its access line); nil:
    /// not counted.
    public var upstreamCalls: UpstreamCallCounter?
    /// The page shows records as the provider sent them (`include=raw`), which an index does not keep.
    public var needsRawRecords = false
    /// The read is an index's, which keeps what it needs itself: it is neither answered from nor
    /// stored in the response cache (a cached answer could be as old as the list TTL, which would
    /// delay what a refresh brings in by as much again).
    public var bypassesResponseCache = false

    public init(
        credential: String, credentialIdentity: String, requestID: String, traceparent: String, bypassCache: Bool,
        clientID: String = "", deadlineNanoseconds: UInt64? = nil, allowance: UpstreamCallAllowance? = nil,
        upstreamCalls: UpstreamCallCounter? = nil
    ) {
        self.credential = credential
        self.credentialIdentity = credentialIdentity
        self.requestID = requestID
        self.traceparent = traceparent
        self.bypassCache = bypassCache
        self.clientID = clientID
        self.deadlineNanoseconds = deadlineNanoseconds
        self.allowance = allowance
        self.upstreamCalls = upstreamCalls
    }
}

/// How the data behind a result was obtained, for `Cache-Status` and `providers[].cache`.
public enum CacheDisposition: String, Sendable, Equatable {
    /// Every upstream response came from fresh cache.
    case hit
    /// At least one upstream call was made.
    case miss
    /// At least one part was served stale because the upstream failed or was paused.
    case stale

    /// Combines the dispositions of the parts of one answer: stale wins, then miss.
    public func merged(with other: CacheDisposition) -> CacheDisposition {
        if self == .stale || other == .stale { return .stale }
        if self == .miss || other == .miss { return .miss }
        return .hit
    }
}

/// One provider's contribution to a listing page.
public struct ProviderPage: Sendable {
    /// Matching executions strictly after the requested position, in listing order, at most `limit`.
    public var executions: [UnifiedExecution]
    /// True when the provider holds no further matching execution after the last one returned.
    public var exhausted: Bool
    public var cache: CacheDisposition
    /// Set when the request's ceiling on upstream calls stopped the scan before `limit` matches
    /// were found: `executions` are the matches up to `scannedThrough`, and nothing later is known.
    public var scanCut: ScanCut?
    /// When the data the page was read from was last brought up to date with the upstream (an
    /// index's last head refresh); nil when it was read from the upstream for this request.
    public var dataAsOf: Timestamp?

    public init(executions: [UnifiedExecution], exhausted: Bool, cache: CacheDisposition, scanCut: ScanCut? = nil) {
        self.executions = executions
        self.exhausted = exhausted
        self.cache = cache
        self.scanCut = scanCut
    }
}

/// How far a scan stopped by the per-request call ceiling got.
public struct ScanCut: Sendable, Equatable {
    /// Every execution of the provider up to and including this key (in listing order) was examined.
    public var scannedThrough: ExecutionSortKey
    public var ceiling: Int
    /// Offset-paged providers: just past the deepest row read, where the next page can look first.
    public var offsetHint: Int?

    public init(scannedThrough: ExecutionSortKey, ceiling: Int, offsetHint: Int? = nil) {
        self.scannedThrough = scannedThrough
        self.ceiling = ceiling
        self.offsetHint = offsetHint
    }
}

extension ProviderPage {
    /// The answer to a request for zero executions: no call made, and nothing known about what follows.
    public static let nothingRequested = ProviderPage(executions: [], exhausted: false, cache: .hit)

    /// The provider holds nothing that can match; `cache` says how that was learned (`.hit`: without a call).
    public static func noMatches(cache: CacheDisposition = .hit) -> ProviderPage {
        ProviderPage(executions: [], exhausted: true, cache: cache)
    }
}

/// A provider's detail record and the joinable parts of it.
public struct ExecutionDetail: Sendable {
    /// The execution as the detail record describes it.
    public var execution: UnifiedExecution
    /// Kaizen `downloads`, `startBlock`; Kapso/B3OS `events`. nil where the provider has no such field.
    public var downloads: JSONValue?
    public var startBlock: JSONValue?
    public var events: JSONValue?
    /// The whole detail record as the provider sent it.
    public var record: JSONValue
    public var cache: CacheDisposition

    public init(
        execution: UnifiedExecution,
        downloads: JSONValue?,
        startBlock: JSONValue?,
        events: JSONValue?,
        record: JSONValue,
        cache: CacheDisposition
    ) {
        self.execution = execution
        self.downloads = downloads
        self.startBlock = startBlock
        self.events = events
        self.record = record
        self.cache = cache
    }
}

/// Fields `include=` can join onto list items from the detail call.
public enum JoinableField: String, Sendable, CaseIterable {
    case downloads, startBlock, events
}

/// Why a provider could not answer. The API layer turns these into problem+json.
public enum ProviderError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The provider did not answer within its timeout.
    case timeout
    /// No connection could be made or it broke.
    case unreachable(reason: String)
    /// The provider answered with an error status.
    case upstreamStatus(status: Int, detail: String)
    /// The provider answered something the adapter cannot read.
    case malformedResponse(reason: String)
    /// The provider asked us to wait (Retry-After); calls are paused until then.
    case paused(retryAfterSeconds: Int)
    /// The circuit breaker is open after repeated failures.
    case circuitOpen(retryAfterSeconds: Int)
    /// The provider's `requestsPerMinute` leaves no call before the request's deadline. No call was made.
    case minuteBudgetSpent(retryAfterSeconds: Int)
    /// The provider does not know the execution.
    case notFound
    /// The upstream rejected the gateway's credential (401/403): a configuration problem.
    case credentialRejected(status: Int)
    /// The client's budget of upstream calls is spent and no cached copy could be served. No call was made.
    case callBudgetSpent(UpstreamCallBudgetRefusal)
    /// The request already made as many upstream calls as one request may. No call was made.
    case callCeilingReached(ceiling: Int)

    public var description: String {
        switch self {
        case .timeout: "the provider did not answer in time"
        case .unreachable(let reason): "the provider could not be reached: \(reason)"
        case .upstreamStatus(let status, let detail): "the provider answered \(status): \(detail)"
        case .malformedResponse(let reason): "the provider's answer could not be read: \(reason)"
        case .paused(let seconds): "the provider asked the gateway to wait \(seconds) s (Retry-After)"
        case .circuitOpen(let seconds): "calls to the provider are suspended for \(seconds) s after repeated failures"
        case .minuteBudgetSpent(let seconds): "the gateway's budget of calls per minute to the provider is spent for \(seconds) s"
        case .notFound: "the provider does not know this execution"
        case .credentialRejected(let status): "the provider rejected the gateway's credential (\(status))"
        case .callBudgetSpent(let refusal):
            "the client's budget of upstream calls is spent (retry in \(refusal.retryAfterSeconds) s) and no cached copy could be served"
        case .callCeilingReached(let ceiling): "the request reached its ceiling of \(ceiling) upstream calls"
        }
    }
}

/// One configured upstream account, seen through its adapter.
///
/// The unified layer never learns a provider's paging style: it asks for the next matching
/// executions after a position and merges the ordered answers.
public protocol ExecutionProvider: Sendable {
    /// The configured name (`kaizen`, `kapso-eu`, ...), the prefix of execution ids.
    var name: String { get }
    /// The provider type (`kaizen`, `kapso`, `b3os`).
    var type: String { get }
    /// The fields the provider's detail call can supply; others are `null` without a call.
    var joinableFields: Set<JoinableField> { get }

    /// False when no execution of this provider can match `filter` (a status it has no
    /// counterpart for, test runs where it has none), so nothing need be read.
    func mayHoldMatches(_ filter: ExecutionFilter) -> Bool

    /// Up to `limit` executions matching `filter`, strictly after `position` (from the start when
    /// nil), in `(createdAt desc, id desc)` order.
    func executions(
        matching filter: ExecutionFilter,
        after position: ProviderPosition?,
        limit: Int,
        call: UpstreamCallContext
    ) async throws(ProviderError) -> ProviderPage

    /// The detail record of one execution (`providerExecutionID` without the provider prefix).
    func detail(of providerExecutionID: String, call: UpstreamCallContext) async throws(ProviderError) -> ExecutionDetail
}

extension ExecutionProvider {
    /// A provider that knows nothing more of its data holds matches for any satisfiable filter.
    public func mayHoldMatches(_ filter: ExecutionFilter) -> Bool { !filter.isUnsatisfiable }
}
