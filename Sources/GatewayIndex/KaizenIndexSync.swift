public import GatewayProviders
import Synchronization

/// Kaizen lists the whole organisation in one answer, without paging but with a `fromTs` filter.
/// A full refresh reads it all (as a stream) and replaces the index whole; the refreshes between
/// two full ones read only what started since the oldest active execution among the newest
/// 1,000 (or since the newest indexed one), which brings new executions and recent status changes
/// in at the cost of a small answer. Every `fullRefreshEvery`-th refresh is a full one, which also
/// catches executions deleted upstream and status changes of older active ones.
public struct KaizenIndexSync: OrganisationListingSynchronizer {
    public struct Memo: Sendable {
        /// Refreshes since the last full one; nil before the first.
        var refreshesSinceFull: Int?
    }

    public let provider: KaizenProvider
    public var emptyMemo: Memo { Memo() }

    /// A full refresh after this many head refreshes: with refreshes at most one list TTL apart,
    /// at most every 12 × `cache.listTTLMs` (1 minute by default) while pages keep asking.
    public static let fullRefreshEvery = 12
    /// The newest executions whose status a head refresh re-reads.
    static let statusReach = 1_000

    public init(provider: KaizenProvider) {
        self.provider = provider
    }

    public func refreshHead(_ index: inout ExecutionIndex, memo: inout Memo, call: UpstreamCallContext) async throws(ProviderError) {
        if let done = memo.refreshesSinceFull, done + 1 < Self.fullRefreshEvery, index.coverage[Self.source] == .everything,
           let start = Self.headRefreshStart(of: index, reach: Self.statusReach) {
            // A second early: `fromTs` is inclusive, but whether Kaizen compares below the second is its own.
            let (earlier, overflow) = start.nanosecondsSinceEpoch.subtractingReportingOverflow(1_000_000_000)
            let since = overflow ? start : Timestamp(nanosecondsSinceEpoch: earlier)
            let list = try await provider.fullList(since: since, call: call)
            index.upsert(list.executions)
            memo.refreshesSinceFull = done + 1
            return
        }
        // The new index is built as the answer streams in, beside the one pages are served from.
        let builder = StreamedIndexBuilder()
        try await provider.fullList(call: call, receive: builder.add)
        var fresh = builder.finish()
        fresh.setCoverage(.everything, of: Self.source)
        index = fresh
        memo.refreshesSinceFull = 0
    }

    public func encodeMemo(_ memo: Memo, into writer: inout SnapshotWriter) {
        writer.signed(Int64(memo.refreshesSinceFull ?? -1))
    }

    public func decodeMemo(from reader: inout SnapshotReader) throws(SnapshotError) -> Memo {
        let done = try reader.signed()
        guard done >= -1, done <= Int64(Self.fullRefreshEvery) else { throw SnapshotError("Kaizen's refresh count is out of range") }
        return Memo(refreshesSinceFull: done < 0 ? nil : Int(done))
    }

    /// Only reached before a first refresh completed: the whole list is the one stretch.
    public func deepen(_ source: String, in index: ExecutionIndex, memo: Memo, call: UpstreamCallContext) async throws(ProviderError) -> SourceRead<Memo> {
        let list = try await provider.fullList(call: call)
        return SourceRead(source: source, executions: list.executions, coverage: .everything) { $0.refreshesSinceFull = 0 }
    }
}

/// An index built from executions handed over one at a time by a streamed read. While the answer
/// streams in, each execution is only appended (its text to a pool, its record to a list): the
/// read is paced by how fast elements are taken, and a slow taker would stall the transfer.
/// Ordering and the id map come once the answer is complete (`finish`).
final class StreamedIndexBuilder: Sendable {
    private let state = Mutex(ExecutionIndex.Staged())

    @Sendable func add(_ execution: UnifiedExecution) {
        state.withLock { $0.append(execution) }
    }

    /// The index of everything added.
    func finish() -> ExecutionIndex {
        // Moved out, so that the index built holds the only reference to the staged storage.
        let staged = state.withLock { state in
            let staged = state
            state = ExecutionIndex.Staged()
            return staged
        }
        return ExecutionIndex(staged)
    }
}
