import DequeModule
import GatewayEventLoop
public import GatewayProviders
public import GatewayUpstream
public import Logging
import Synchronization

/// A provider type's way of keeping an `ExecutionIndex` in sync with its upstream.
///
/// The synchroniser only reads; `IndexedProvider` owns the index, runs one sync step at a time
/// per index, and swaps results in.
public protocol IndexSynchronizer: Sendable {
    /// What the synchroniser remembers between steps beside the index (Kapso: each workflow's
    /// `last_executed_at` and deeper-read cursor).
    associatedtype Memo: Sendable
    associatedtype Provider: UpstreamBackedProvider

    var provider: Provider { get }

    /// The index and memo of a credential nothing was read for yet.
    func emptyIndex() -> (ExecutionIndex, Memo)

    /// Brings executions created since the last refresh into the index, and status changes as
    /// far as the budget allows. May replace the index whole.
    func refreshHead(_ index: inout ExecutionIndex, memo: inout Memo, call: UpstreamCallContext) async throws(ProviderError)

    /// Reads `source` one stretch past its coverage.
    func deepen(_ source: String, in index: ExecutionIndex, memo: Memo, call: UpstreamCallContext) async throws(ProviderError) -> SourceRead<Memo>

    /// The sources that can hold an execution matching `filter`; nil: every source.
    func sources(for filter: ExecutionFilter, in index: ExecutionIndex) -> Set<String>?

    /// The memo as bytes, for replicas that share the index (`IndexSharing`), and back.
    func encodeMemo(_ memo: Memo, into writer: inout SnapshotWriter)
    func decodeMemo(from reader: inout SnapshotReader) throws(SnapshotError) -> Memo
}

extension IndexSynchronizer where Memo == Void {
    public func encodeMemo(_ memo: Void, into writer: inout SnapshotWriter) {}
    public func decodeMemo(from reader: inout SnapshotReader) throws(SnapshotError) {}
}

/// A provider that lists the whole organisation as one sequence (Kaizen, B3OS): its index has
/// one source, of which nothing is known at first.
public protocol OrganisationListingSynchronizer: IndexSynchronizer {
    /// The memo of a credential nothing was read for yet.
    var emptyMemo: Memo { get }
}

extension OrganisationListingSynchronizer {
    /// The one source's name.
    static var source: String { "organisation" }

    public func emptyIndex() -> (ExecutionIndex, Memo) {
        var index = ExecutionIndex()
        index.setCoverage(.nothing, of: Self.source)
        return (index, emptyMemo)
    }

    public func sources(for filter: ExecutionFilter, in index: ExecutionIndex) -> Set<String>? { nil }

    /// Where a refresh that reads only the head must start: at the oldest active execution among
    /// the newest `reach` (their status may have changed), else at the newest indexed one; nil
    /// when nothing is indexed.
    static func headRefreshStart(of index: ExecutionIndex, reach: Int) -> Timestamp? {
        var start: Timestamp?
        var examined = 0
        index.forEachNewestFirst { execution in
            if start == nil || execution.status?.isTerminal != true { start = execution.createdAt }
            examined += 1
            return examined < reach
        }
        return start
    }
}

extension OrganisationListingSynchronizer where Memo == Void {
    public var emptyMemo: Void { () }
}

/// What one deeper read of a source found.
public struct SourceRead<Memo>: Sendable {
    public var source: String
    public var executions: [UnifiedExecution]
    /// The source's coverage once `executions` are in the index.
    public var coverage: SourceCoverage
    public var updateMemo: @Sendable (inout Memo) -> Void

    public init(source: String, executions: [UnifiedExecution], coverage: SourceCoverage, updateMemo: @escaping @Sendable (inout Memo) -> Void = { _ in }) {
        self.source = source
        self.executions = executions
        self.coverage = coverage
        self.updateMemo = updateMemo
    }
}

/// How long an index answers without going upstream.
public struct IndexFreshness: Sendable, Equatable {
    /// After this long since the last head refresh, the next page starts another one
    /// (`cache.listTTLMs`): a new execution is visible within it of a page asking.
    public var refreshAfterNanoseconds: UInt64
    /// While head refreshes fail, the index is still served (marked stale) for this long past
    /// `refreshAfterNanoseconds` (`cache.staleIfErrorMs`); after that a page waits for a refresh
    /// and fails with its error.
    public var staleIfErrorNanoseconds: UInt64

    public init(refreshAfterNanoseconds: UInt64, staleIfErrorNanoseconds: UInt64) {
        self.refreshAfterNanoseconds = refreshAfterNanoseconds
        self.staleIfErrorNanoseconds = staleIfErrorNanoseconds
    }
}

/// One index and what goes with it. Pages read `state.index` as a value (a snapshot); sync
/// steps run one at a time (`turns`) and swap their result in.
final class IndexEntry<Sync: IndexSynchronizer>: AnyIndexEntry {
    struct State {
        var index: ExecutionIndex
        var memo: Sync.Memo
        /// The clock's instant of the last successful head refresh; nil: none yet.
        var refreshedAt: UInt64?
        var refreshedAtUnixSeconds: Int64?
        var backgroundRefreshRunning = false
        /// When the last head refresh failed, so that pages do not start one after another
        /// against a failing upstream.
        var refreshFailedAt: UInt64?
        /// The version of the shared index this one is (0: none adopted or published yet).
        var sharedVersion: UInt64 = 0
    }

    let state: Mutex<State>
    let turns = SerialTurns()
    /// The index's name among replicas: provider and upstream credential identity.
    let sharingKey: String

    init(index: ExecutionIndex, memo: Sync.Memo, sharingKey: String) {
        state = Mutex(State(index: index, memo: memo))
        self.sharingKey = sharingKey
    }

    var footprint: (executions: Int, bytes: Int) {
        state.withLock { ($0.index.count, $0.index.estimatedBytes) }
    }
}

/// One at a time, in arrival order: the sync steps of one index are never concurrent.
///
/// A caller waits for its turn only as long as its request does: one whose task is cancelled
/// (its client left) leaves the queue at once, one still waiting at its deadline leaves with
/// `.timeout`; neither ever holds the turn. A turn behind a long step (a background refresh of a
/// streamed listing can take minutes) would otherwise outlast the request that waits for it.
final class SerialTurns: Sendable {
    private enum Wait { case granted, cancelled, timedOut }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Wait, Never>
    }

    private struct State {
        var busy = false
        var waiting = Deque<Waiter>()
        var nextWaiterID: UInt64 = 0
    }

    private let state = Mutex(State())

    var waiting: Int { state.withLock { $0.waiting.count } }

    /// - Parameters:
    ///   - deadline: when waiting for the turn gives up with `.timeout`, on `clock`; nil waits as
    ///     long as it takes. `body` itself is not bounded by it.
    func run<T>(
        deadline: UInt64? = nil, clock: any UpstreamClock = SystemUpstreamClock(), _ body: () async throws(ProviderError) -> T
    ) async throws(ProviderError) -> T {
        try await acquire(deadline: deadline, clock: clock)
        defer { release() }
        return try await body()
    }

    private func acquire(deadline: UInt64?, clock: any UpstreamClock) async throws(ProviderError) {
        let waiterID = state.withLock { state in
            state.nextWaiterID &+= 1
            return state.nextWaiterID
        }
        let now = deadline == nil ? 0 : clock.now()
        // Expires the wait at the deadline; started once the waiter is queued, so that it finds it.
        var timer: Task<Void, Never>?
        defer { timer?.cancel() }
        let wait = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Wait, Never>) in
                // Deciding and queueing in one locked section, cancellation checked inside it: either
                // `onCancel` (which takes the same lock) finds this waiter queued, or this check sees
                // the cancellation. Checked and queued apart, a cancel landing in between would find
                // nothing to remove and leave the waiter queued for good.
                let decided = state.withLock { state -> Wait? in
                    if Task.isCancelled { return .cancelled }
                    if !state.busy {
                        state.busy = true
                        return .granted
                    }
                    if let deadline, now >= deadline { return .timedOut }
                    state.waiting.append(Waiter(id: waiterID, continuation: continuation))
                    return nil
                }
                if let decided {
                    continuation.resume(returning: decided)
                    return
                }
                timer = deadline.map { deadline in
                    Task { [self] in
                        do {
                            try await clock.sleep(until: deadline)
                        } catch {
                            return
                        }
                        leave(waiterID: waiterID, as: .timedOut)
                    }
                }
            }
        } onCancel: {
            leave(waiterID: waiterID, as: .cancelled)
        }
        switch wait {
        case .granted:
            // Granted as the task was cancelled (the grant won the lock): hand the turn on rather
            // than run a step nobody waits for.
            if Task.isCancelled {
                release()
                throw .unreachable(reason: "the request was cancelled")
            }
        case .cancelled:
            throw .unreachable(reason: "the request was cancelled")
        case .timedOut:
            throw .timeout
        }
    }

    /// Takes a waiter out of the queue without the turn; one granted the turn already keeps it.
    private func leave(waiterID: UInt64, as wait: Wait) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiting.firstIndex(where: { $0.id == waiterID }) else { return nil }
            return state.waiting.remove(at: index)
        }
        waiter?.continuation.resume(returning: wait)
    }

    private func release() {
        let next = state.withLock { state -> Waiter? in
            if let next = state.waiting.popFirst() { return next }  // stays busy: handed over
            state.busy = false
            return nil
        }
        next?.continuation.resume(returning: .granted)
    }
}

/// A provider whose listings are answered from an index of its executions, kept in sync with
/// the upstream, per upstream credential identity (docs/api.md, Freshness).
///
/// A page costs no upstream call while the index is fresh. When it is older than the list TTL,
/// the page is answered from it and a head refresh starts behind it (stale-while-revalidate);
/// `Cache-Control: no-cache` waits for that refresh instead. A page that reaches past what the
/// index covers reads the sources it needs one stretch deeper, newest first, and only those.
/// `include=raw` needs the records as the provider sent them, which the index does not keep, so
/// such pages are read from the provider directly.
public struct IndexedProvider<Sync: IndexSynchronizer>: UpstreamBackedProvider {
    public let synchronizer: Sync
    private let store: IndexStore
    private let freshness: IndexFreshness
    private let clock: any UpstreamClock
    private let logger: Logger

    /// Sources deepened together in one step: the few with the newest boundaries, so a cold page
    /// costs about one call per source that holds one of its executions.
    static var sourcesPerStep: Int { 4 }
    /// Bounds the deeper reads of one page, whatever the upstream announces.
    static var maximumStepsPerPage: Int { 1000 }

    public init(synchronizer: Sync, store: IndexStore, freshness: IndexFreshness, clock: any UpstreamClock = SystemUpstreamClock(), logger: Logger) {
        self.synchronizer = synchronizer
        self.store = store
        self.freshness = freshness
        self.clock = clock
        self.logger = logger
    }

    public var name: String { synchronizer.provider.name }
    public var type: String { synchronizer.provider.type }
    public var joinableFields: Set<JoinableField> { synchronizer.provider.joinableFields }
    public var fetcher: ProviderFetcher { synchronizer.provider.fetcher }

    public func mayHoldMatches(_ filter: ExecutionFilter) -> Bool { synchronizer.provider.mayHoldMatches(filter) }

    public func detail(of providerExecutionID: String, call: UpstreamCallContext) async throws(ProviderError) -> ExecutionDetail {
        try await synchronizer.provider.detail(of: providerExecutionID, call: call)
    }

    public func executions(
        matching filter: ExecutionFilter,
        after position: ProviderPosition?,
        limit: Int,
        call: UpstreamCallContext
    ) async throws(ProviderError) -> ProviderPage {
        if call.needsRawRecords {
            return try await synchronizer.provider.executions(matching: filter, after: position, limit: limit, call: call)
        }
        guard limit > 0 else { return .nothingRequested }
        if !mayHoldMatches(filter) { return .noMatches() }

        let entry = store.entry(provider: name, credentialIdentity: call.credentialIdentity) {
            let (index, memo) = synchronizer.emptyIndex()
            return IndexEntry<Sync>(index: index, memo: memo, sharingKey: name + ":" + call.credentialIdentity)
        }
        var cache = try await freshen(entry, call: call)
        let boundary = filter.effectiveBoundary(after: position)

        for _ in 0..<Self.maximumStepsPerPage {
            let index = entry.state.withLock { $0.index }
            let page = index.page(
                matching: filter, after: boundary, limit: limit, sources: synchronizer.sources(for: filter, in: index)
            )
            if page.sourcesToDeepen.isEmpty {
                return answer(page.executions, exhausted: page.exhausted, cache: cache, entry: entry)
            }
            do throws(ProviderError) {
                try await deepen(entry, sources: chooseSources(for: page, in: index), call: call)
                cache = cache.merged(with: .miss)
            } catch .callCeilingReached(let ceiling) {
                // The page ends where the index is complete, with a cursor that continues there.
                guard let through = page.coveredThrough, boundary.map({ $0.precedes(through) }) ?? true else {
                    throw .callCeilingReached(ceiling: ceiling)
                }
                var cut = answer(page.executions, exhausted: false, cache: cache, entry: entry)
                cut.scanCut = ScanCut(scannedThrough: through, ceiling: ceiling)
                return cut
            }
        }
        throw .malformedResponse(reason: "the listing still announced more after \(Self.maximumStepsPerPage) deeper reads")
    }

    private func answer(_ executions: [UnifiedExecution], exhausted: Bool, cache: CacheDisposition, entry: IndexEntry<Sync>) -> ProviderPage {
        let (refreshedAt, unixSeconds) = entry.state.withLock { ($0.refreshedAt, $0.refreshedAtUnixSeconds) }
        var page = ProviderPage(executions: executions, exhausted: exhausted, cache: cache)
        page.dataAsOf = unixSeconds.flatMap { Timestamp(unixSeconds: $0) }
        // A page rendered from the index may be kept as long as the index is fresh, and no longer;
        // one rendered from a stale index (its refresh under way, or failing) only a moment, so
        // that pages asked for meanwhile are not each built again, one after another.
        if cache == .stale {
            let moment = min(Self.staleIndexPageNanoseconds, freshness.refreshAfterNanoseconds)
            ProviderFetcher.partFreshness?.record(freshUntil: clock.now().addingClamped(moment))
        } else if let refreshedAt {
            ProviderFetcher.partFreshness?.record(freshUntil: refreshedAt.addingClamped(freshness.refreshAfterNanoseconds))
        }
        return page
    }

    // MARK: - Freshness

    /// Makes sure the index may answer: waits for a head refresh when there is no data yet, when
    /// the client asked for `no-cache`, or when the data is older than the stale window allows;
    /// otherwise starts one behind the page when the data is older than the list TTL.
    private func freshen(_ entry: IndexEntry<Sync>, call: UpstreamCallContext) async throws(ProviderError) -> CacheDisposition {
        let now = clock.now()
        let refreshedAt = entry.state.withLock { $0.refreshedAt }
        guard let refreshedAt else {
            // Any refresh that completes meanwhile (a concurrent page's) will do.
            try await refreshHead(entry, satisfiedBy: { $0 != nil }, call: call)
            return .miss
        }
        let age = now.subtractingClamped(refreshedAt)
        let servableFor = freshness.refreshAfterNanoseconds.addingClamped(freshness.staleIfErrorNanoseconds)
        if call.bypassCache || age > servableFor {
            do throws(ProviderError) {
                if call.bypassCache {
                    // `no-cache` wants what the upstream holds now: a refresh that began after it arrived.
                    try await refreshHead(entry, satisfiedBy: { ($0 ?? 0) >= now }, call: call)
                } else {
                    try await refreshHead(entry, satisfiedBy: { $0 != refreshedAt }, call: call)
                }
                return .miss
            } catch {
                // Within the stale window the index still answers, marked stale (a client whose
                // call budget is spent included); `no-cache` learns so.
                if age > servableFor { throw error }
                return .stale
            }
        }
        if age > freshness.refreshAfterNanoseconds {
            refreshInBackground(entry, call: call, now: now)
            return .stale
        }
        return .hit
    }

    /// How long a page answered from a stale index may be kept: what a refresh brings in shows
    /// at most this much later.
    static var staleIndexPageNanoseconds: UInt64 { 1_000_000_000 }

    /// After a failed refresh, pages wait this long (or the list TTL, if shorter) before starting
    /// another one in the background.
    static var retryAfterFailedRefreshNanoseconds: UInt64 { 1_000_000_000 }

    /// One head refresh, unless the one a concurrent page made while this one waited for its turn
    /// already does (`satisfiedBy` is given when the last refresh began, nil: none yet).
    private func refreshHead(
        _ entry: IndexEntry<Sync>, satisfiedBy isSatisfied: @escaping (UInt64?) -> Bool, call: UpstreamCallContext
    ) async throws(ProviderError) {
        try await syncStep(entry, call: call, isDone: { isSatisfied(entry.state.withLock { $0.refreshedAt }) }) { () throws(ProviderError) in
            var (index, memo) = entry.state.withLock { ($0.index, $0.memo) }
            let started = clock.now()
            do throws(ProviderError) {
                try await synchronizer.refreshHead(&index, memo: &memo, call: Self.indexRead(call))
            } catch {
                let failedAt = clock.now()
                entry.state.withLock { $0.refreshFailedAt = failedAt }
                store.recordSync(failed: true)
                logger.warning("index refresh failed", metadata: ["provider": "\(name)", "requestId": "\(call.requestID)", "error": "\(error)"])
                throw error
            }
            let unixSeconds = clock.unixTimeSeconds()
            entry.state.withLock {
                $0.index = index
                $0.memo = memo
                $0.refreshedAt = started
                $0.refreshedAtUnixSeconds = unixSeconds
            }
            store.recordSync(failed: false)
            store.didChange(keep: entry)
        }
    }

    // MARK: - Sync steps, alone or shared between replicas

    /// Runs one sync step of `entry` (a head refresh, a deeper read) in the index's turn, unless
    /// `isDone` says a step another page made meanwhile already did what was needed. The turn is
    /// waited for until the request's deadline (`.timeout`) or its cancellation, no longer.
    ///
    /// With replicas sharing indexes (`IndexStore.sharing`), a newer version another replica
    /// published is adopted first; when that does not do, the step runs under the index's lease
    /// and its result is published. While another replica holds the lease, this one waits for its
    /// publication instead of calling the upstream too. A store that cannot be reached leaves the
    /// replica to sync alone.
    private func syncStep(
        _ entry: IndexEntry<Sync>, call: UpstreamCallContext, isDone: @escaping () -> Bool,
        _ step: @escaping () async throws(ProviderError) -> Void
    ) async throws(ProviderError) {
        try await entry.turns.run(deadline: call.deadlineNanoseconds, clock: clock) { () throws(ProviderError) in
            guard let sharing = store.sharing else {
                if !isDone() { try await step() }
                return
            }
            // While another replica holds the lease, wait for its publication, within the lease's
            // length and the request's deadline; a holder that gives up (or dies, once its lease
            // lapses) leaves the lease to whoever asks next.
            var giveUp = clock.now().addingClamped(sharing.leaseNanoseconds)
            if let deadline = call.deadlineNanoseconds { giveUp = min(giveUp, deadline) }
            while true {
                if isDone() { return }
                if await adoptLatest(entry, from: sharing), isDone() { return }
                switch await sharing.acquireLease(entry.sharingKey) {
                case .unavailable:
                    return try await step()
                case .acquired(let lease):
                    return try await stepHolding(lease, entry: entry, sharing: sharing, isDone: isDone, step)
                case .heldByAnother:
                    let now = clock.now()
                    // The page is served stale meanwhile (or fails, past the stale window).
                    guard now < giveUp else { throw .timeout }
                    do { try await clock.sleep(until: min(giveUp, now.addingClamped(Self.publicationPollNanoseconds))) } catch { throw .timeout }
                }
            }
        }
    }

    /// How often a replica waiting for another's publication looks for it.
    static var publicationPollNanoseconds: UInt64 { 20_000_000 }

    /// Runs `step` under `lease`, renewed while it runs, and publishes what it produced.
    private func stepHolding(
        _ lease: IndexLease, entry: IndexEntry<Sync>, sharing: any IndexSharing, isDone: () -> Bool,
        _ step: () async throws(ProviderError) -> Void
    ) async throws(ProviderError) {
        let renewal = Task { [clock] in
            // Renewed at a third of its length: two renewals may fail before it lapses.
            while !Task.isCancelled {
                do { try await clock.sleep(until: clock.now().addingClamped(sharing.leaseNanoseconds / 3)) } catch { return }
                guard await sharing.renewLease(lease) else { return }
            }
        }
        do throws(ProviderError) {
            // The previous holder may have published between our look and our lease.
            if await adoptLatest(entry, from: sharing), isDone() {
                renewal.cancel()
                await sharing.releaseLease(lease)
                return
            }
            try await step()
        } catch {
            renewal.cancel()
            await sharing.releaseLease(lease)
            throw error
        }
        renewal.cancel()
        await publish(entry, to: sharing, lease: lease)
        await sharing.releaseLease(lease)
    }

    /// Adopts the newest version another replica published, when there is a newer one than this
    /// replica holds; true when it did.
    private func adoptLatest(_ entry: IndexEntry<Sync>, from sharing: any IndexSharing) async -> Bool {
        let held = entry.state.withLock { $0.sharedVersion }
        guard let publication = await sharing.latest(entry.sharingKey, newerThan: held) else { return false }
        let adopted: (ExecutionIndex, Sync.Memo)
        do throws(SnapshotError) {
            let (index, memoBytes) = try IndexSnapshot.index(provider: name, header: publication.header, segments: publication.segments)
            var reader = SnapshotReader(memoBytes)
            let memo = try synchronizer.decodeMemo(from: &reader)
            guard reader.isAtEnd else { throw SnapshotError("bytes after the memo") }
            adopted = (index, memo)
        } catch {
            logger.warning("a shared index version could not be read; syncing alone", metadata: [
                "provider": "\(name)", "version": "\(publication.version)", "error": "\(error)",
            ])
            return false
        }
        let refreshedAt = clock.now().subtractingClamped(publication.ageNanoseconds)
        entry.state.withLock { state in
            state.index = adopted.0
            state.memo = adopted.1
            state.refreshedAt = refreshedAt
            state.refreshedAtUnixSeconds = publication.refreshedAtUnixSeconds
            state.sharedVersion = publication.version
        }
        store.recordAdoption()
        store.didChange(keep: entry)
        return true
    }

    private func publish(_ entry: IndexEntry<Sync>, to sharing: any IndexSharing, lease: IndexLease) async {
        let (index, memo, refreshedAt, unixSeconds) = entry.state.withLock {
            ($0.index, $0.memo, $0.refreshedAt, $0.refreshedAtUnixSeconds)
        }
        guard let refreshedAt, let unixSeconds else { return }
        var memoWriter = SnapshotWriter()
        synchronizer.encodeMemo(memo, into: &memoWriter)
        let publication = IndexPublication(
            version: 0, header: IndexSnapshot.header(coverage: index.coverage, memo: memoWriter.bytes),
            segments: IndexSnapshot.segments(of: index), ageNanoseconds: clock.now().subtractingClamped(refreshedAt),
            refreshedAtUnixSeconds: unixSeconds)
        if let version = await sharing.publish(entry.sharingKey, publication, lease: lease) {
            entry.state.withLock { $0.sharedVersion = max($0.sharedVersion, version) }
        } else {
            logger.warning("the shared index was not published (lease lost or store unreachable)", metadata: ["provider": "\(name)"])
        }
    }

    /// A head refresh the page does not wait for; at most one per index at a time. It is made on
    /// behalf of the page's client but with no deadline or call allowance of that request.
    private func refreshInBackground(_ entry: IndexEntry<Sync>, call: UpstreamCallContext, now: UInt64) {
        let pause = min(Self.retryAfterFailedRefreshNanoseconds, freshness.refreshAfterNanoseconds)
        let start = entry.state.withLock { state -> Bool in
            if state.backgroundRefreshRunning { return false }
            if let failedAt = state.refreshFailedAt, now.subtractingClamped(failedAt) < pause { return false }
            state.backgroundRefreshRunning = true
            return true
        }
        guard start else { return }
        var background = call
        background.deadlineNanoseconds = nil
        background.allowance = nil
        background.bypassCache = false
        // Work that outlives the request is not the request's: not on its access line's call count,
        // and (detached, so without its task-locals) not in its page's freshness.
        background.upstreamCalls = nil
        let observed = entry.state.withLock { $0.refreshedAt }
        Task.detached { [self] in
            defer { entry.state.withLock { $0.backgroundRefreshRunning = false } }
            do throws(ProviderError) {
                try await refreshHead(entry, satisfiedBy: { $0 != observed }, call: background)
            } catch {
                // Logged by refreshHead; the next page tries again.
            }
        }
    }

    /// A call of the index's own: the index is the cache of what it reads.
    private static func indexRead(_ call: UpstreamCallContext) -> UpstreamCallContext {
        var read = call
        read.bypassesResponseCache = true
        return read
    }

    // MARK: - Deeper reads

    /// The sources to read deeper for a page, a few at a time, those whose unread part could hold
    /// the newest executions first (a source of which nothing is known comes first of all). When
    /// the page stopped at an indexed execution, each of them must be read past it; when the
    /// index ran out, only those tied for the newest unread part are read now, since reading
    /// them may settle the page without the others (a cold Kapso page reads about one workflow
    /// per execution it shows).
    private func chooseSources(for page: IndexPage, in index: ExecutionIndex) -> [String] {
        func rank(_ source: String) -> ExecutionSortKey? {
            if case .through(let boundary) = index.coverage[source] { return boundary }
            return nil
        }
        var candidates = page.sourcesToDeepen
        if page.stoppedAt == nil, let newest = candidates.map(rank).min(by: { left, right in
            switch (left, right) {
            case (nil, _): return right != nil
            case (_, nil): return false
            case (let leftKey?, let rightKey?): return leftKey.precedes(rightKey)
            }
        }) {
            candidates = candidates.filter { rank($0) == newest }
        }
        let ordered = candidates.sorted { left, right in
            switch (rank(left), rank(right)) {
            case (nil, nil): return left < right
            case (nil, _): return true
            case (_, nil): return false
            case (let leftKey?, let rightKey?): return leftKey.precedes(rightKey) || (leftKey == rightKey && left < right)
            }
        }
        return Array(ordered.prefix(Self.sourcesPerStep))
    }

    /// Reads each source one stretch deeper, together, and adds what they hold. A source another
    /// page (or replica) deepened meanwhile is not read again.
    private func deepen(_ entry: IndexEntry<Sync>, sources: [String], call: UpstreamCallContext) async throws(ProviderError) {
        let expected = entry.state.withLock { state in sources.map { state.index.coverage[$0] } }
        let stillNeeded = { () -> [String] in
            let coverage = entry.state.withLock { $0.index.coverage }
            return zip(sources, expected).filter { coverage[$0.0] == $0.1 }.map(\.0)
        }
        try await syncStep(entry, call: call, isDone: { stillNeeded().isEmpty }) { () throws(ProviderError) in
            let (index, memo) = entry.state.withLock { ($0.index, $0.memo) }
            let results = await readConcurrently(stillNeeded(), index: index, memo: memo, call: Self.indexRead(call))
            // What was read is kept even when another source failed: those calls were spent.
            var firstFailure: ProviderError?
            entry.state.withLock { state in
                for result in results {
                    switch result {
                    case .success(let read):
                        state.index.upsert(read.executions)
                        state.index.setCoverage(read.coverage, of: read.source)
                        read.updateMemo(&state.memo)
                    case .failure(let error):
                        if firstFailure == nil { firstFailure = error }
                    }
                }
            }
            store.didChange(keep: entry)
            if let firstFailure {
                if !firstFailure.isCallLimitRefusal { store.recordSync(failed: true) }
                throw firstFailure
            }
            store.recordSync(failed: false)
        }
    }

    private func readConcurrently(
        _ sources: [String], index: ExecutionIndex, memo: Sync.Memo, call: UpstreamCallContext
    ) async -> [Result<SourceRead<Sync.Memo>, ProviderError>] {
        if sources.count == 1, let only = sources.first {
            do throws(ProviderError) {
                return [.success(try await synchronizer.deepen(only, in: index, memo: memo, call: call))]
            } catch {
                return [.failure(error)]
            }
        }
        let results = await withTaskGroup(of: (Int, Result<SourceRead<Sync.Memo>, ProviderError>).self) { group in
            for (position, source) in sources.enumerated() {
                group.addTask { [synchronizer] in
                    // Assigned, then returned after the do/catch (see KeysetMerge.read).
                    let result: Result<SourceRead<Sync.Memo>, ProviderError>
                    do throws(ProviderError) {
                        result = .success(try await synchronizer.deepen(source, in: index, memo: memo, call: call))
                    } catch {
                        result = .failure(error)
                    }
                    return (position, result)
                }
            }
            var collected: [(Int, Result<SourceRead<Sync.Memo>, ProviderError>)] = []
            for await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }
        }
        return results.map(\.1)
    }
}

extension IndexStore {
    /// `provider` answered from an index in this store when its type has a synchroniser; as it
    /// is otherwise.
    public func indexing(
        _ provider: any UpstreamBackedProvider, freshness: IndexFreshness, clock: any UpstreamClock = SystemUpstreamClock(), logger: Logger
    ) -> any UpstreamBackedProvider {
        switch provider {
        case let kaizen as KaizenProvider:
            IndexedProvider(synchronizer: KaizenIndexSync(provider: kaizen), store: self, freshness: freshness, clock: clock, logger: logger)
        case let kapso as KapsoProvider:
            IndexedProvider(synchronizer: KapsoIndexSync(provider: kapso), store: self, freshness: freshness, clock: clock, logger: logger)
        case let b3os as B3OSProvider:
            IndexedProvider(synchronizer: B3OSIndexSync(provider: b3os), store: self, freshness: freshness, clock: clock, logger: logger)
        default:
            provider
        }
    }
}
