public import GatewayProviders

/// Kapso has no organisation-wide list: each workflow is a source, read newest first with a
/// cursor. `GET /workflows` says when each workflow last ran (`last_executed_at`), which is what
/// keeps the calls few:
/// - a workflow never read is known to hold nothing newer than its `last_executed_at`, so a page
///   reads it only once the listing gets that far, newest workflows first;
/// - a head refresh lists the workflows (one call per 100) and re-reads only the workflows whose
///   `last_executed_at` moved and of which something is indexed, from their newest indexed instant;
/// - active executions (running, waiting) are re-read from the oldest active instant of their
///   workflow, `statusRefreshesPerRefresh` workflows per head refresh, those checked longest ago
///   first, and only while at least half the per-minute budget is left.
public struct KapsoIndexSync: IndexSynchronizer {
    public struct Memo: Sendable {
        var workflows: [String: WorkflowMemo] = [:]
        /// Counts head refreshes, to order status refreshes by when each workflow had one.
        var refreshes = 0

        public init() {}
    }

    struct WorkflowMemo: Sendable {
        /// `last_executed_at` as of the last head refresh that brought the workflow up to date.
        var lastExecutedAt: Timestamp?
        /// Where the last deeper read stopped (Kapso's cursor) and the query it belongs to.
        var deeperCursor: String?
        var deeperBefore: Timestamp?
        /// The head refresh (by count) that last re-read its active executions.
        var statusRefreshedAt = 0
    }

    public let provider: KapsoProvider
    /// The most Kapso returns in one page.
    static let pageSize = 100
    /// Workflow re-reads for status changes per head refresh, within the budget rule above.
    public static let statusRefreshesPerRefresh = 2
    /// Pages one re-read of a workflow's head follows at most; the rest is read on demand.
    static let maximumPagesPerRead = 10

    public init(provider: KapsoProvider) {
        self.provider = provider
    }

    public func emptyIndex() -> (ExecutionIndex, Memo) { (ExecutionIndex(), Memo()) }

    public func encodeMemo(_ memo: Memo, into writer: inout SnapshotWriter) {
        writer.signed(Int64(memo.refreshes))
        writer.count(memo.workflows.count)
        for (id, workflow) in memo.workflows.sorted(by: { $0.key < $1.key }) {
            writer.string(id)
            writer.byte((workflow.lastExecutedAt == nil ? 0 : 1) | (workflow.deeperBefore == nil ? 0 : 2))
            if let lastExecutedAt = workflow.lastExecutedAt { writer.signed(lastExecutedAt.nanosecondsSinceEpoch) }
            if let deeperBefore = workflow.deeperBefore { writer.signed(deeperBefore.nanosecondsSinceEpoch) }
            writer.optionalString(workflow.deeperCursor)
            writer.signed(Int64(workflow.statusRefreshedAt))
        }
    }

    public func decodeMemo(from reader: inout SnapshotReader) throws(SnapshotError) -> Memo {
        var memo = Memo()
        memo.refreshes = Int(truncatingIfNeeded: try reader.signed())
        let count = try reader.count(atMost: 10_000_000)
        for _ in 0..<count {
            let id = try reader.string()
            let present = try reader.byte()
            guard present < 4 else { throw SnapshotError("unknown fields in a Kapso workflow memo") }
            var workflow = WorkflowMemo()
            if present & 1 != 0 { workflow.lastExecutedAt = Timestamp(nanosecondsSinceEpoch: try reader.signed()) }
            if present & 2 != 0 { workflow.deeperBefore = Timestamp(nanosecondsSinceEpoch: try reader.signed()) }
            workflow.deeperCursor = try reader.optionalString()
            workflow.statusRefreshedAt = Int(truncatingIfNeeded: try reader.signed())
            memo.workflows[id] = workflow
        }
        return memo
    }

    public func sources(for filter: ExecutionFilter, in index: ExecutionIndex) -> Set<String>? {
        filter.workflowID.map { [$0] }
    }

    // MARK: - Head refresh

    public func refreshHead(_ index: inout ExecutionIndex, memo: inout Memo, call: UpstreamCallContext) async throws(ProviderError) {
        let workflows: [KapsoWorkflowSummary]
        if provider.configuredWorkflowIDs.isEmpty {
            workflows = try await provider.workflowSummaries(call: call).value
        } else {
            // Configured workflows still learn when they last ran where the key may list them;
            // where it may not, each one's head is read on every refresh instead.
            var listed: [String: KapsoWorkflowSummary] = [:]
            do throws(ProviderError) {
                for summary in try await provider.workflowSummaries(call: call).value { listed[summary.id] = summary }
            } catch {
                if error.isCallLimitRefusal { throw error }
            }
            workflows = provider.configuredWorkflowIDs.map {
                listed[$0] ?? KapsoWorkflowSummary(id: $0, lastExecutedAt: nil, executionCount: nil)
            }
        }
        memo.refreshes += 1
        let indexed = Self.indexedExtremes(index)

        var headReads: [(workflowID: String, from: Timestamp, lastExecutedAt: Timestamp?)] = []
        let listed = Set(workflows.map(\.id))
        for workflow in workflows {
            let newest = indexed[workflow.id]?.newest
            if workflow.executionCount == 0, newest == nil {
                index.setCoverage(.everything, of: workflow.id)
                memo.workflows[workflow.id, default: WorkflowMemo()].lastExecutedAt = nil
                continue
            }
            guard let newest else {
                // Nothing of it read: all of its executions lie at or before `last_executed_at`.
                let coverage: SourceCoverage = workflow.lastExecutedAt.flatMap { Self.boundaryAbove(lastExecutedAt: $0) }.map { .through($0) } ?? .nothing
                if index.coverage[workflow.id] == nil || workflow.lastExecutedAt != memo.workflows[workflow.id]?.lastExecutedAt {
                    index.setCoverage(coverage, of: workflow.id)
                    memo.workflows[workflow.id, default: WorkflowMemo()].lastExecutedAt = workflow.lastExecutedAt
                    memo.workflows[workflow.id]?.deeperCursor = nil
                }
                continue
            }
            // Unknown `last_executed_at` (configured workflows): the head is read every refresh.
            if workflow.lastExecutedAt == nil || workflow.lastExecutedAt != memo.workflows[workflow.id]?.lastExecutedAt {
                headReads.append((workflow.id, newest, workflow.lastExecutedAt))
            }
        }
        for source in index.coverage.keys where !listed.contains(source) {
            index.removeCoverage(of: source)  // the workflow is gone; what was read of it stays listed
            memo.workflows[source] = nil
        }

        var statusReads: [(workflowID: String, from: Timestamp)] = []
        if hasBudgetForStatusRefresh() {
            let active = indexed.compactMap { id, extremes in extremes.oldestActive.map { (id, $0) } }
                .filter { id, _ in listed.contains(id) && !headReads.contains { $0.workflowID == id } }
                .sorted { (memo.workflows[$0.0]?.statusRefreshedAt ?? 0, $0.0) < (memo.workflows[$1.0]?.statusRefreshedAt ?? 0, $1.0) }
            statusReads = active.prefix(Self.statusRefreshesPerRefresh).map { ($0.0, $0.1) }
        }

        // Reads go one after another: the provider's pacing spaces them anyway, and a failure
        // keeps what was read before it.
        var failure: ProviderError?
        for read in headReads {
            do throws(ProviderError) {
                index.upsert(try await readSince(read.from, workflowID: read.workflowID, call: call))
                memo.workflows[read.workflowID, default: WorkflowMemo()].lastExecutedAt = read.lastExecutedAt
            } catch {
                failure = error
                break
            }
        }
        if failure == nil {
            for read in statusReads {
                do throws(ProviderError) {
                    index.upsert(try await readSince(read.from, workflowID: read.workflowID, call: call))
                    memo.workflows[read.workflowID, default: WorkflowMemo()].statusRefreshedAt = memo.refreshes
                } catch {
                    failure = error
                    break
                }
            }
        }
        if let failure { throw failure }
    }

    /// Status refreshes are the first thing given up when the per-minute budget runs low.
    private func hasBudgetForStatusRefresh() -> Bool {
        let endpoint = provider.fetcher.endpoint
        guard let perMinute = endpoint.requestsPerMinute, let left = endpoint.callsLeftThisMinute() else { return true }
        return left * 2 >= perMinute
    }

    /// Every execution of a workflow created at or after `instant` (Kapso's `created_after` is
    /// inclusive; it is rounded down to the second, since Kapso may compare at that precision).
    private func readSince(_ instant: Timestamp, workflowID: String, call: UpstreamCallContext) async throws(ProviderError) -> [UnifiedExecution] {
        var source = KapsoWorkflowSource(
            provider: provider, workflowID: workflowID, pageSize: Self.pageSize, nativeStatus: nil,
            createdAfter: Self.wholeSecond(instant, roundingUp: false), createdBefore: nil, call: call
        )
        var read: [UnifiedExecution] = []
        for _ in 0..<Self.maximumPagesPerRead {
            let chunk = try await source.nextChunk()
            read.append(contentsOf: chunk.executions)
            if !chunk.mayHaveMore { break }
        }
        return read
    }

    /// Per workflow: the newest indexed instant and the oldest instant of an active execution.
    private static func indexedExtremes(_ index: ExecutionIndex) -> [String: (newest: Timestamp, oldestActive: Timestamp?)] {
        var extremes: [String: (newest: Timestamp, oldestActive: Timestamp?)] = [:]
        index.forEachNewestFirst { execution in
            guard let workflowID = execution.workflowID else { return true }
            var entry = extremes[workflowID] ?? (execution.createdAt, nil)
            if execution.status.map({ !$0.isTerminal }) ?? false { entry.oldestActive = execution.createdAt }
            extremes[workflowID] = entry
            return true
        }
        return extremes
    }

    // MARK: - Deeper reads

    public func deepen(_ source: String, in index: ExecutionIndex, memo: Memo, call: UpstreamCallContext) async throws(ProviderError) -> SourceRead<Memo> {
        let coverage = index.coverage[source] ?? .nothing
        var boundary: ExecutionSortKey?
        if case .through(let key) = coverage { boundary = key }
        let remembered = memo.workflows[source]
        // Continue the previous deeper read where Kapso's cursor left it; otherwise start at the
        // boundary (inclusive, rounded up to the second: executions read twice are dropped by id).
        let before = remembered?.deeperCursor != nil
            ? remembered?.deeperBefore : boundary.map { Self.wholeSecond($0.createdAt, roundingUp: true) }
        var reader = KapsoWorkflowSource(
            provider: provider, workflowID: source, pageSize: Self.pageSize, nativeStatus: nil,
            createdAfter: nil, createdBefore: before, call: call, cursor: remembered?.deeperCursor
        )
        let chunk = try await reader.nextChunk()
        let cursor = reader.cursor
        let remember: @Sendable (inout Memo) -> Void = { memo in
            memo.workflows[source, default: WorkflowMemo()].deeperCursor = cursor
            memo.workflows[source, default: WorkflowMemo()].deeperBefore = before
        }
        if !chunk.mayHaveMore {
            return SourceRead(source: source, executions: chunk.executions, coverage: .everything, updateMemo: remember)
        }
        // A page that reached no further (ties at one instant) leaves the coverage; the saved
        // cursor continues it.
        let newCoverage = coverage.extended(byReading: chunk.executions) ?? coverage
        return SourceRead(source: source, executions: chunk.executions, coverage: newCoverage, updateMemo: remember)
    }

    /// The key above every execution that `last_executed_at` = `instant` allows: Kapso may give it
    /// to the second while executions carry fractions, so the whole second counts.
    static func boundaryAbove(lastExecutedAt instant: Timestamp) -> ExecutionSortKey? {
        let lastNanosecondOfSecond = wholeSecond(instant, roundingUp: false).nanosecondsSinceEpoch.addingReportingOverflow(999_999_999)
        if lastNanosecondOfSecond.overflow { return nil }
        return ExecutionSortKey.above(Timestamp(nanosecondsSinceEpoch: max(instant.nanosecondsSinceEpoch, lastNanosecondOfSecond.partialValue)))
    }

    /// `instant` at whole-second precision, rounded down or up.
    static func wholeSecond(_ instant: Timestamp, roundingUp: Bool) -> Timestamp {
        let second: Int64 = 1_000_000_000
        let nanoseconds = instant.nanosecondsSinceEpoch
        let remainder = ((nanoseconds % second) + second) % second
        guard remainder != 0 else { return instant }
        // At the ends of the representable instants the instant itself is the closest bound.
        let (down, underflow) = nanoseconds.subtractingReportingOverflow(remainder)
        if underflow { return instant }
        guard roundingUp else { return Timestamp(nanosecondsSinceEpoch: down) }
        let (up, overflow) = down.addingReportingOverflow(second)
        return Timestamp(nanosecondsSinceEpoch: overflow ? nanoseconds : up)
    }
}
