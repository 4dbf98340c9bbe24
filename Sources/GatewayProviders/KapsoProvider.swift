import GatewayHTTP
import GatewayJSON
public import Logging
import Synchronization

/// Kapso (`api.kapso.ai/platform/v1`): no organisation-wide list, so each workflow's
/// `GET /workflows/{id}/executions` (newest first, cursor `after`, `limit` ≤ 100) is read and the
/// workflows are merged here. Workflows come from configuration or `GET /workflows`.
///
/// A page starts at `created_before` = the position's instant (inclusive), so no native cursor
/// is kept between pages; executions at that instant that were already shown are skipped, and the
/// native `after` cursor is followed within one page when a workflow's answer held only those.
///
/// Status: the documented list item has no `status`; the simulator (and Kapso's status filter)
/// suggest the field exists, so it is read when present. When absent, an item listed under a
/// `status=` filter the gateway sent has that status; otherwise its status is null.
public struct KapsoProvider: UpstreamBackedProvider {
    public let name: String
    public var type: String { "kapso" }
    public var joinableFields: Set<JoinableField> { [.events] }
    public let fetcher: ProviderFetcher
    /// Empty: discovered with `GET /workflows`.
    public let configuredWorkflowIDs: [String]
    private let logger: Logger
    /// Workflows already reported missing, so a configured workflow that was deleted is logged
    /// once, not on every request.
    private let reportedMissingWorkflows = MissingWorkflowLog()

    /// Extra items asked for per workflow beyond the page's limit, so the usual few executions
    /// skipped at the position's instant do not cost a second call.
    static let limitSlack = 5

    public init(name: String, fetcher: ProviderFetcher, workflowIDs: [String] = [], logger: Logger = Logger(label: "gateway.providers.kapso")) {
        self.name = name
        self.fetcher = fetcher
        var unique: [String] = []
        for id in workflowIDs where !unique.contains(id) { unique.append(id) }
        self.configuredWorkflowIDs = unique
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
        var nativeStatus: String?
        if let statuses = filter.statuses {
            let native = Set(statuses.flatMap(Self.nativeStatuses(for:)))
            if native.count == 1 { nativeStatus = native.first }
        }

        var cache = CacheDisposition.hit
        var workflowIDs: [String]
        if configuredWorkflowIDs.isEmpty {
            let discovered = try await workflows(call: call)
            cache = discovered.cache
            workflowIDs = discovered.value
        } else {
            workflowIDs = configuredWorkflowIDs
        }
        if let wanted = filter.workflowID { workflowIDs = workflowIDs.contains(wanted) ? [wanted] : [] }
        if workflowIDs.isEmpty { return .noMatches(cache: cache) }

        var createdBefore = filter.createdBefore
        if let instant = position?.last.createdAt, createdBefore.map({ instant < $0 }) ?? true { createdBefore = instant }
        let pageSize = min(100, limit + Self.limitSlack)
        let sources = workflowIDs.map { workflowID in
            KapsoWorkflowSource(
                provider: self, workflowID: workflowID, pageSize: pageSize, nativeStatus: nativeStatus,
                createdAfter: filter.createdAfter, createdBefore: createdBefore, call: call
            )
        }
        var page = try await KeysetMerge.page(
            sources: sources, after: filter.effectiveBoundary(after: position), filter: filter, limit: limit
        )
        page.cache = cache.merged(with: page.cache)
        return page
    }

    public func mayHoldMatches(_ filter: ExecutionFilter) -> Bool {
        // Kapso has no test runs: isTest=true matches nothing of it.
        if filter.isUnsatisfiable || filter.isTest == true { return false }
        if let statuses = filter.statuses, statuses.allSatisfy({ Self.nativeStatuses(for: $0).isEmpty }) { return false }
        return true
    }

    /// Bounds the workflow-list pages read, in case `meta` announces an absurd page count.
    static let maximumWorkflowPages = 100

    struct WorkflowListPage: Sendable {
        var workflows: [KapsoWorkflowSummary]
        /// From Kapso's `meta: {page, per_page, total_pages, total_count}` when present.
        var totalPages: Int
    }

    /// The organisation's workflow ids, from `GET /workflows` (each page cached for the list TTL).
    /// The seed shows a bare `{data: [...]}`; Kapso's other lists carry `meta.total_pages`, so
    /// further pages are read when it announces them.
    func workflows(call: UpstreamCallContext) async throws(ProviderError) -> Fetched<[String]> {
        let summaries = try await workflowSummaries(call: call)
        return Fetched(value: summaries.value.map(\.id), cache: summaries.cache)
    }

    /// The organisation's workflows with when each last ran, from every page of `GET /workflows`.
    public func workflowSummaries(call: UpstreamCallContext) async throws(ProviderError) -> Fetched<[KapsoWorkflowSummary]> {
        let first = try await workflowListPage(number: nil, call: call)
        var workflows = first.value.workflows
        var seen = Set(workflows.map(\.id))
        var cache = first.cache
        let lastPage = min(first.value.totalPages, Self.maximumWorkflowPages)
        if lastPage >= 2 {
            for number in 2...lastPage {
                let page = try await workflowListPage(number: number, call: call)
                cache = cache.merged(with: page.cache)
                for workflow in page.value.workflows where seen.insert(workflow.id).inserted { workflows.append(workflow) }
            }
        }
        return Fetched(value: workflows, cache: cache)
    }

    private func workflowListPage(number: Int?, call: UpstreamCallContext) async throws(ProviderError) -> Fetched<WorkflowListPage> {
        let query: [(name: String, value: String)] = number.map { [("page", String($0))] } ?? []
        return try await fetcher.fetchListing(
            ProviderRequest(path: "/workflows", query: query), call: call,
            decode: { json throws(ProviderError) in try Self.workflowListPage(json) }
        )
    }

    static func workflowListPage(_ json: JSONValue) throws(ProviderError) -> WorkflowListPage {
        let root = try json.requiredObject("the workflow list")
        guard let items = root["data"]?.arrayValue else {
            throw .malformedResponse(reason: "the workflow list has no 'data' array")
        }
        var workflows: [KapsoWorkflowSummary] = []
        var seen: Set<String> = []
        for item in items {
            let record = try item.requiredObject("a workflow")
            let id = try record.requiredID("id", in: "a workflow")
            guard seen.insert(id).inserted else { continue }
            workflows.append(KapsoWorkflowSummary(
                id: id, lastExecutedAt: record.timestamp("last_executed_at"),
                executionCount: record.nonNegativeInteger("execution_count").map { Int(clamping: $0) }
            ))
        }
        let totalPages = root.object("meta")?.integer("total_pages").map { Int(clamping: $0) } ?? 1
        return WorkflowListPage(workflows: workflows, totalPages: max(1, totalPages))
    }

    struct WorkflowPage: Sendable {
        var executions: [UnifiedExecution]
        /// The native cursor of the next page; nil when the workflow has no more.
        var nextCursor: String?
    }

    /// One page of one workflow's executions. A workflow the provider no longer knows (404) has none.
    func workflowPage(
        workflowID: String, query: [(name: String, value: String)], nativeStatus: String?, call: UpstreamCallContext
    ) async throws(ProviderError) -> Fetched<WorkflowPage> {
        let request = ProviderRequest(path: "/workflows/" + percentEncode(workflowID) + "/executions", query: query)
        let name = self.name
        let skipped = SkippedRecordLog(logger: logger, provider: name, requestID: call.requestID)
        do throws(ProviderError) {
            return try await fetcher.fetchListing(
                request, call: call,
                decode: { json throws(ProviderError) in
                    try Self.workflowPage(json, listedUnderStatus: nativeStatus, skipped: skipped)
                }
            )
        } catch .upstreamStatus(status: 404, _) {
            if reportedMissingWorkflows.firstReport(of: workflowID) {
                logger.warning("Kapso does not know a workflow; listing none of its executions", metadata: ["provider": "\(name)", "workflowId": "\(workflowID)"])
            }
            return Fetched(value: WorkflowPage(executions: [], nextCursor: nil), cache: .miss)
        }
    }

    static func workflowPage(_ json: JSONValue, listedUnderStatus: String?, skipped: SkippedRecordLog) throws(ProviderError) -> WorkflowPage {
        let root = try json.requiredObject("a workflow's executions")
        guard let items = root["data"]?.arrayValue else {
            throw .malformedResponse(reason: "a workflow's executions have no 'data' array")
        }
        var executions: [UnifiedExecution] = []
        executions.reserveCapacity(items.count)
        for item in items {
            let read = skipped.readable(item) { item throws(ProviderError) in
                try execution(from: item, provider: skipped.provider, listedUnderStatus: listedUnderStatus)
            }
            if let read { executions.append(read) }
        }
        return WorkflowPage(executions: executions, nextCursor: nextCursor(root["paging"], pageIsEmpty: items.isEmpty))
    }

    /// `paging.cursors.after` when `paging.next` says there is more; the cursor is taken from
    /// `next` only as a fallback, and `next` itself is never followed (it names a host, and the
    /// credential must go only to the configured base URL).
    static func nextCursor(_ paging: JSONValue?, pageIsEmpty: Bool) -> String? {
        guard !pageIsEmpty, let paging = paging?.objectValue else { return nil }
        guard let next = paging.string("next") else { return nil }
        if let after = paging.object("cursors")?.string("after") { return after }
        guard let queryStart = next.firstIndex(of: "?") else { return nil }
        let query = String(next[next.index(after: queryStart)...])
        return parseQueryItems(query).last { $0.name == "after" }.map(\.value).flatMap { $0.isEmpty ? nil : $0 }
    }

    // MARK: - Detail

    public func detail(of providerExecutionID: String, call: UpstreamCallContext) async throws(ProviderError) -> ExecutionDetail {
        let request = ProviderRequest(path: "/workflow_executions/" + percentEncode(providerExecutionID))
        let name = self.name
        return try await fetchDetail(request, call: call) { json throws(ProviderError) in try Self.detail(json, provider: name) }
    }

    /// The detail answer, as if fetched (`cache: .miss`).
    static func detail(_ json: JSONValue, provider: String) throws(ProviderError) -> ExecutionDetail {
        let record = try json.requiredObject("the detail answer").requiredRecord("data", in: "the detail answer")
        let execution = try execution(from: record, provider: provider, listedUnderStatus: nil)
        return ExecutionDetail(
            execution: execution, downloads: nil, startBlock: nil, events: execution.raw["events"] ?? .null,
            record: execution.raw, cache: .miss
        )
    }

    // MARK: - Mapping (docs/api.md, The unified execution)

    static func unifiedStatus(for native: String) -> ExecutionStatus? {
        switch native {
        case "running": .running
        case "waiting", "handoff": .waiting
        case "ended": .succeeded
        case "failed": .failed
        default: nil
        }
    }

    static func nativeStatuses(for status: ExecutionStatus) -> [String] {
        switch status {
        case .running: ["running"]
        case .waiting: ["waiting", "handoff"]
        case .succeeded: ["ended"]
        case .failed: ["failed"]
        case .queued, .paused, .cancelled: []
        }
    }

    /// Kapso has no execution name, test flag, attempts or parameters: those stay null/empty.
    static func execution(from value: JSONValue, provider: String, listedUnderStatus: String?) throws(ProviderError) -> UnifiedExecution {
        let record = try value.requiredObject("an execution")
        let id = try record.requiredID("id", in: "an execution")
        let startedAt = try record.requiredTimestamp("started_at", of: id)
        let endedAt = record.timestamp("ended_at")
        let providerStatus = record.string("status") ?? listedUnderStatus
        return UnifiedExecution(
            provider: provider,
            providerExecutionID: id,
            workflow: record.workflowReference("workflow"),
            name: nil,
            status: providerStatus.flatMap(unifiedStatus(for:)),
            providerStatus: providerStatus,
            createdAt: startedAt,
            startedAt: startedAt,
            endedAt: endedAt,
            durationMs: elapsedMilliseconds(from: startedAt, to: endedAt),
            isTest: nil,
            attempts: nil,
            searchableValues: [],
            raw: value
        )
    }
}

/// One workflow of `GET /workflows`, with what tells whether its executions changed.
public struct KapsoWorkflowSummary: Sendable, Equatable {
    public var id: String
    /// When the workflow last started an execution; nil when Kapso did not say (or it never ran).
    public var lastExecutedAt: Timestamp?
    /// How many executions it has; nil when Kapso did not say.
    public var executionCount: Int?

    public init(id: String, lastExecutedAt: Timestamp?, executionCount: Int?) {
        self.id = id
        self.lastExecutedAt = lastExecutedAt
        self.executionCount = executionCount
    }
}

final class MissingWorkflowLog: Sendable {
    private let reported = Mutex<Set<String>>([])

    func firstReport(of workflowID: String) -> Bool {
        reported.withLock { $0.insert(workflowID).inserted }
    }
}

/// One workflow's executions from `created_before`, page by page along the native cursor.
public struct KapsoWorkflowSource: ExecutionChunkSource {
    let provider: KapsoProvider
    let workflowID: String
    let pageSize: Int
    let nativeStatus: String?
    let createdAfter: Timestamp?
    let createdBefore: Timestamp?
    let call: UpstreamCallContext
    /// Kapso's `after` cursor of the next page; nil before the first read and after the last.
    public private(set) var cursor: String?
    private var cursorsUsed: Set<String> = []

    /// - Parameter cursor: where an earlier read of the same query stopped, to continue it.
    public init(
        provider: KapsoProvider, workflowID: String, pageSize: Int, nativeStatus: String?,
        createdAfter: Timestamp?, createdBefore: Timestamp?, call: UpstreamCallContext, cursor: String? = nil
    ) {
        self.provider = provider
        self.workflowID = workflowID
        self.pageSize = pageSize
        self.nativeStatus = nativeStatus
        self.createdAfter = createdAfter
        self.createdBefore = createdBefore
        self.call = call
        self.cursor = cursor
    }

    public mutating func nextChunk() async throws(ProviderError) -> ExecutionChunk {
        var query: [(name: String, value: String)] = [("limit", String(pageSize))]
        if let nativeStatus { query.append(("status", nativeStatus)) }
        if let createdAfter { query.append(("created_after", createdAfter.rfc3339)) }
        if let createdBefore { query.append(("created_before", createdBefore.rfc3339)) }
        if let cursor { query.append(("after", cursor)) }
        let fetched = try await provider.workflowPage(workflowID: workflowID, query: query, nativeStatus: nativeStatus, call: call)
        var mayHaveMore = false
        if let next = fetched.value.nextCursor {
            // A cursor seen before would read the same pages again forever.
            guard cursorsUsed.insert(next).inserted else {
                throw .malformedResponse(reason: "the executions of workflow '\(workflowID)' returned a cursor already followed")
            }
            cursor = next
            mayHaveMore = true
        } else {
            cursor = nil
        }
        return ExecutionChunk(executions: fetched.value.executions, mayHaveMore: mayHaveMore, cache: fetched.cache)
    }
}
