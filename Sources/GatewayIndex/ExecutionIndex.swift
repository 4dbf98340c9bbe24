import DequeModule
public import GatewayProviders

/// How much of one source's executions an index holds. A source is what a provider lists in one
/// sequence: Kaizen's whole organisation, B3OS's, or one Kapso workflow.
public enum SourceCoverage: Sendable, Equatable {
    /// Nothing is known of the source: any of its executions may be missing.
    case nothing
    /// Every execution of the source at `through` or before it in the listing (newer, or the same
    /// instant and a larger id) is in the index; older ones may be missing.
    case through(ExecutionSortKey)
    /// Every execution of the source is in the index.
    case everything

    /// The coverage once `executions` (a stretch read past `self`, newest first) are indexed:
    /// everything created after the oldest instant read, when that reaches further; ties at that
    /// instant may continue in the next stretch. nil when the read reached no further.
    public func extended(byReading executions: [UnifiedExecution]) -> SourceCoverage? {
        guard let oldest = executions.map(\.createdAt).min(), let reached = ExecutionSortKey.above(oldest) else { return nil }
        switch self {
        case .everything: return nil
        case .through(let boundary): return boundary.precedes(reached) ? .through(reached) : nil
        case .nothing: return .through(reached)
        }
    }

    /// True when `key` lies within what is covered.
    public func covers(_ key: ExecutionSortKey) -> Bool {
        switch self {
        case .nothing: false
        case .through(let boundary): key == boundary || key.precedes(boundary)
        case .everything: true
        }
    }
}

/// One page read from an index.
public struct IndexPage: Sendable {
    /// Matching executions strictly after the requested position, in listing order, at most the
    /// requested number.
    public var executions: [UnifiedExecution]
    /// True when nothing after the last execution returned can match: every source is covered to
    /// its end and the scan reached the end of the index.
    public var exhausted: Bool
    /// Sources whose coverage ended before the page was full: reading them deeper may add
    /// executions to this page. Empty when the page is complete as it stands.
    public var sourcesToDeepen: [String]
    /// When sources are to be deepened: the key through which the page is nonetheless complete
    /// (every execution at or before it in the listing is known); nil when nothing is.
    public var coveredThrough: ExecutionSortKey?
    /// The indexed execution the page stopped at because some source may hold an unread one
    /// before it: every source in `sourcesToDeepen` must be read past it. nil when the index ran
    /// out first (then only the sources whose unread part is newest need reading first).
    public var stoppedAt: ExecutionSortKey?
}

/// One provider's executions for one upstream credential, in the unified listing order, with
/// what is known of each source's completeness.
///
/// Pages are read from it by keyset position exactly as from a provider: every execution after a
/// position, in `(createdAt desc, id desc)` order. Because positions are sort keys, not offsets,
/// executions that arrive at the head while a client walks never shift its later pages, and
/// records whose status changes keep their place.
///
/// A page never reaches past what every source is known to cover: an execution is only handed
/// out when no source can still hold an unread one before it. When coverage runs out first, the
/// page says which sources to read deeper (`sourcesToDeepen`), so a sync planner can spend
/// upstream calls only where a page needs them.
///
/// A value type: a refresh builds a new index and swaps it in whole, so a page is always read
/// from one version.
public struct ExecutionIndex: Sendable {
    /// Executions in ascending sort order (oldest first). New executions arrive at the head of the
    /// listing and deeper reads add older ones: both ends take a batch without moving the rest.
    private var ascending = Deque<IndexedExecution>()
    /// The records' text, and the map from provider execution id to it.
    private var pool = ExecutionTextPool()
    private var interner = StringInterner()
    /// The provider every execution of the index comes from (empty until the first arrives).
    private var provider = ""
    public private(set) var coverage: [String: SourceCoverage] = [:]

    public init() {}

    /// Executions gathered for a new index, in any order, before it is built: their text already
    /// in its pool, their records in a list.
    struct Staged: Sendable {
        fileprivate var records: [IndexedExecution] = []
        fileprivate var pool = ExecutionTextPool()
        fileprivate var interner = StringInterner()
        fileprivate var provider = ""

        mutating func append(_ execution: UnifiedExecution) {
            if provider.isEmpty { provider = execution.provider }
            let block = pool.append(
                instant: execution.createdAt.nanosecondsSinceEpoch, id: execution.providerExecutionID, name: execution.name,
                searchableValues: execution.searchableValues
            )
            records.append(IndexedExecution(execution, text: block, interner: &interner))
        }
    }

    /// The index of `staged`, where a later reading of an execution replaces an earlier one.
    init(_ staged: consuming Staged) {
        // Taken out of `staged`, so that each buffer has one owner and is written in place.
        var pool = staged.pool
        var records = staged.records
        interner = staged.interner
        provider = staged.provider
        staged = Staged()
        for record in records { pool.register(record.text) }
        // A record whose id maps to another block was read again later.
        records.removeAll { !pool.isCurrent($0.text) }
        pool.bytes.withUnsafeBufferPointer { bytes in records.sort { $1.precedes($0, in: bytes) } }
        ascending = Deque(records)
        self.pool = pool
        compactIfWasteful()
    }

    public var count: Int { ascending.count }

    public var isEmpty: Bool { ascending.isEmpty }

    /// An estimate of the memory the index holds, for the indexes' shared byte budget: the
    /// records, the text pool and its id map as allocated, and the shared strings.
    public var estimatedBytes: Int {
        ascending.count * MemoryLayout<IndexedExecution>.stride + pool.estimatedBytes + interner.estimatedBytes
    }

    /// Adds executions or replaces the indexed ones with the same provider execution id (a status
    /// change keeps its place; a changed creation instant moves it). The raw provider record is
    /// not kept: an index holds what pages and filters need. Every execution of one index comes
    /// from one provider.
    public mutating func upsert(_ executions: some Sequence<UnifiedExecution>) {
        defer { compactIfWasteful() }
        var batch: [IndexedExecution] = []
        // Where each execution of this batch is in `batch`, by its text block.
        var batchPositions: [Int: Int] = [:]
        for execution in executions {
            if provider.isEmpty { provider = execution.provider }
            let instant = execution.createdAt.nanosecondsSinceEpoch
            let previous = pool.block(forID: execution.providerExecutionID)
            let previousInstant = previous.map(pool.instant(of:))
            // A new reading whose text did not change (a status change) keeps its block.
            let block: Int
            if let previous, pool.holds(
                id: execution.providerExecutionID, name: execution.name, searchableValues: execution.searchableValues, at: previous
            ) {
                block = previous
            } else {
                block = pool.append(
                    instant: instant, id: execution.providerExecutionID, name: execution.name, searchableValues: execution.searchableValues
                )
                pool.register(block)
            }
            pool.setInstant(instant, of: block)
            let stored = IndexedExecution(execution, text: block, interner: &interner)
            if let previous, let earlier = batchPositions.removeValue(forKey: previous) {
                batch[earlier] = stored  // the later reading of the same execution wins
                batchPositions[block] = earlier
                continue
            }
            if let previous, let previousInstant, let index = position(createdAtNanoseconds: previousInstant, block: previous) {
                if previousInstant == instant {
                    ascending[index] = stored
                    continue
                }
                ascending.remove(at: index)
            }
            batchPositions[block] = batch.count
            batch.append(stored)
        }
        guard !batch.isEmpty else { return }
        let bytes = pool.bytes
        bytes.withUnsafeBufferPointer { pool in
            batch.sort { $1.precedes($0, in: pool) }
            guard let oldestInBatch = batch.first, let newestInBatch = batch.last,
                  let oldest = ascending.first, let newest = ascending.last
            else {
                ascending.append(contentsOf: batch)
                return
            }
            if oldestInBatch.precedes(newest, in: pool) {
                ascending.append(contentsOf: batch)  // all newer: arrivals at the head
            } else if oldest.precedes(newestInBatch, in: pool) {
                ascending.prepend(contentsOf: batch)  // all older: a deeper read
            } else {
                ascending = Self.merged(ascending, batch, in: pool)
            }
        }
    }

    /// Two ascending sequences as one (neither holds an id the other holds).
    private static func merged(
        _ left: Deque<IndexedExecution>, _ right: [IndexedExecution], in pool: UnsafeBufferPointer<UInt8>
    ) -> Deque<IndexedExecution> {
        var result = Deque<IndexedExecution>(minimumCapacity: left.count + right.count)
        var leftIndex = left.startIndex
        var rightIndex = right.startIndex
        while leftIndex < left.endIndex, rightIndex < right.endIndex {
            if left[leftIndex].precedes(right[rightIndex], in: pool) {
                result.append(right[rightIndex])
                rightIndex += 1
            } else {
                result.append(left[leftIndex])
                leftIndex += 1
            }
        }
        result.append(contentsOf: left[leftIndex...])
        result.append(contentsOf: right[rightIndex...])
        return result
    }

    /// Copies the live blocks into a new pool once abandoned ones (texts that changed) take
    /// more than half of it, so that an index kept up to date for long does not grow without
    /// its executions growing.
    private mutating func compactIfWasteful() {
        guard pool.abandonedBytes > 64 * 1024, pool.abandonedBytes * 2 > pool.bytes.count else { return }
        var compacted = ExecutionTextPool(reservingBytes: pool.bytes.count - pool.abandonedBytes, ids: ascending.count)
        for index in ascending.indices {
            let block = compacted.append(block: ascending[index].text, of: pool)
            compacted.register(block)
            ascending[index].text = block
        }
        pool = compacted
    }

    /// Records what is known of a source's completeness (see `SourceCoverage`).
    public mutating func setCoverage(_ coverage: SourceCoverage, of source: String) {
        self.coverage[source] = coverage
    }

    public func contains(providerExecutionID id: String) -> Bool { pool.block(forID: id) != nil }

    /// Up to `limit` executions matching `filter` strictly after `position` (from the newest when
    /// nil), stopping where the coverage of a source in `sources` ends (every source the index
    /// knows when nil; a planner passes fewer when a filter rules sources out, such as a Kapso
    /// workflow other than `workflowId`).
    public func page(
        matching filter: ExecutionFilter,
        after position: ExecutionSortKey?,
        limit: Int,
        sources: Set<String>? = nil
    ) -> IndexPage {
        let incomplete = coverage.filter { $0.value != .everything && (sources?.contains($0.key) ?? true) }
        // The newest boundary among incomplete sources: past it some source may still hold an
        // unread execution. Nothing at all is covered while a source is `.nothing`.
        var frontier: ExecutionSortKey?
        var blocked = false
        for case let (_, sourceCoverage) in incomplete {
            switch sourceCoverage {
            case .nothing: blocked = true
            case .through(let boundary): if frontier.map({ boundary.precedes($0) }) ?? true { frontier = boundary }
            case .everything: break
            }
        }
        func sourcesNotCovering(_ key: ExecutionSortKey) -> [String] {
            incomplete.filter { !$0.value.covers(key) }.keys.sorted()
        }

        // The listing order runs from the end of `ascending` towards its start.
        var index = position.map { insertionIndex(for: $0) } ?? ascending.count
        var executions: [UnifiedExecution] = []
        // `q` is evaluated on the pooled text; the rest of the filter on the record.
        let search = PooledTextSearch(terms: filter.searchTerms, provider: provider)
        var recordFilter = filter
        recordFilter.searchTerms = []
        while index > 0, executions.count < limit {
            index -= 1
            let execution = view(ascending[index])
            let beyondFrontier = frontier.map { frontier in
                pool.bytes.withUnsafeBufferPointer { execution.record.compare(to: frontier, provider: provider, in: $0) > 0 }
            }
            if blocked || beyondFrontier == true {
                let key = execution.sortKey
                return IndexPage(
                    executions: executions, exhausted: false, sourcesToDeepen: sourcesNotCovering(key),
                    coveredThrough: blocked ? nil : frontier, stoppedAt: key
                )
            }
            if recordFilter.matches(execution), search.matches(execution) { executions.append(execution.unified) }
        }
        if executions.count >= limit {
            return IndexPage(executions: executions, exhausted: false, sourcesToDeepen: [], coveredThrough: nil, stoppedAt: nil)
        }
        // The index ran out before the page was full: what the sources may still hold decides.
        return IndexPage(
            executions: executions, exhausted: incomplete.isEmpty, sourcesToDeepen: incomplete.keys.sorted(),
            coveredThrough: blocked ? nil : frontier, stoppedAt: nil
        )
    }

    /// Removes a source's coverage (a Kapso workflow that no longer exists); its executions stay.
    public mutating func removeCoverage(of source: String) {
        coverage[source] = nil
    }

    /// How many indexed executions come before `key` in the listing (newer, or the same instant
    /// and a larger id): where `key` sits in an offset-paged listing, give or take arrivals.
    public func countPreceding(_ key: ExecutionSortKey) -> Int {
        ascending.count - insertionIndex(for: key)
    }

    /// Calls `body` with each execution, newest first, until it returns false.
    func forEachNewestFirst(_ body: (IndexedExecutionView) -> Bool) {
        for execution in ascending.reversed() where !body(view(execution)) { return }
    }

    private func view(_ record: IndexedExecution) -> IndexedExecutionView {
        IndexedExecutionView(record: record, provider: provider, pool: pool, interner: interner)
    }

    /// Every execution in the unified shape, oldest first, one at a time (for a snapshot).
    func forEachOldestFirst(_ body: (UnifiedExecution) -> Void) {
        for execution in ascending { body(view(execution).unified) }
    }

    // MARK: - Positions

    /// The array index of the indexed execution with this instant and the id of `block`.
    private func position(createdAtNanoseconds instant: Int64, block: Int) -> Int? {
        pool.bytes.withUnsafeBufferPointer { pool in
            let id = ExecutionTextPool.idBytes(of: block, in: pool)
            // The first record that does not come after (instant, id) in ascending order.
            var low = 0
            var high = ascending.count
            while low < high {
                let middle = low + (high - low) / 2
                let record = ascending[middle]
                let isBelow = record.createdAtNanoseconds != instant
                    ? record.createdAtNanoseconds < instant
                    : ExecutionTextPool.idBytes(of: record.text, in: pool).lexicographicallyPrecedes(id)
                if isBelow { low = middle + 1 } else { high = middle }
            }
            guard low < ascending.count, ascending[low].createdAtNanoseconds == instant,
                  ExecutionTextPool.idBytes(of: ascending[low].text, in: pool).elementsEqual(id)
            else { return nil }
            return low
        }
    }

    /// The first array index whose execution does not come before `key` in ascending order
    /// (lower bound).
    private func insertionIndex(for key: ExecutionSortKey) -> Int {
        pool.bytes.withUnsafeBufferPointer { pool in
            var low = 0
            var high = ascending.count
            while low < high {
                let middle = low + (high - low) / 2
                // Ascending order is the listing order reversed: a record is below `key` when `key` precedes it.
                if ascending[middle].compare(to: key, provider: provider, in: pool) > 0 { low = middle + 1 } else { high = middle }
            }
            return low
        }
    }
}
