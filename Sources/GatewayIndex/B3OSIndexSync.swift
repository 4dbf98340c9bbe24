public import GatewayProviders

/// B3OS lists the organisation newest first by offset. New executions arrive at the head, so a
/// head refresh reads windows from offset 0 until it reaches executions the index already holds,
/// and far enough to re-read the active executions near the head (their status changes). Pages
/// that reach past what was read read the next window from where the coverage ends.
public struct B3OSIndexSync: OrganisationListingSynchronizer {
    public let provider: B3OSProvider
    /// Windows (of 100) a head refresh reads at most. Active executions among the newest
    /// `maximumHeadWindows × 100` get their status refreshed by every head refresh; when more
    /// than that arrived since the last one, the coverage restarts at what was read and pages
    /// read on from there.
    public static let maximumHeadWindows = 10
    /// Windows one deeper read may take to move past the boundary's instant.
    static let maximumWindowsPerStretch = 20

    public init(provider: B3OSProvider) {
        self.provider = provider
    }


    public func refreshHead(_ index: inout ExecutionIndex, memo: inout Void, call: UpstreamCallContext) async throws(ProviderError) {
        // Nothing read yet: the first page reads the head as it deepens.
        guard let coverage = index.coverage[Self.source], coverage != .nothing, !index.isEmpty else { return }
        // How deep the refresh reads: to the newest indexed execution, and on to the oldest
        // active one within reach.
        let reachBack = Self.headRefreshStart(of: index, reach: Self.maximumHeadWindows * B3OSProvider.windowSize)

        var listing = B3OSListingSource(provider: provider, boundaryInstant: nil, offsetHint: nil, stopBefore: nil, call: call)
        var read: [UnifiedExecution] = []
        var joined = false
        var ended = false
        var oldestRead: Timestamp?
        for _ in 0..<Self.maximumHeadWindows {
            let chunk = try await listing.nextChunk()
            for execution in chunk.executions {
                if oldestRead.map({ execution.createdAt < $0 }) ?? true { oldestRead = execution.createdAt }
                if !joined, index.contains(providerExecutionID: execution.providerExecutionID), coverage.covers(execution.sortKey) {
                    joined = true
                }
            }
            read.append(contentsOf: chunk.executions)
            if !chunk.mayHaveMore {
                ended = true
                break
            }
            if joined, let oldestRead, let reachBack, oldestRead <= reachBack { break }
        }
        index.upsert(read)
        if ended {
            index.setCoverage(.everything, of: Self.source)
        } else if !joined {
            // More arrived than one refresh reads: what lies between is unknown until read again.
            let restart: SourceCoverage = oldestRead.flatMap(ExecutionSortKey.above).map { .through($0) } ?? .nothing
            index.setCoverage(restart, of: Self.source)
        }
    }

    public func deepen(_ source: String, in index: ExecutionIndex, memo: Void, call: UpstreamCallContext) async throws(ProviderError) -> SourceRead<Void> {
        let coverage = index.coverage[source] ?? .nothing
        var boundary: ExecutionSortKey?
        if case .through(let key) = coverage { boundary = key }
        var listing = B3OSListingSource(
            provider: provider, boundaryInstant: boundary?.createdAt, offsetHint: boundary.map(index.countPreceding),
            stopBefore: nil, call: call
        )
        var read: [UnifiedExecution] = []
        // A window that only repeats the boundary's instant moves nothing: read on (bounded).
        for _ in 0..<Self.maximumWindowsPerStretch {
            let chunk = try await listing.nextChunk()
            read.append(contentsOf: chunk.executions)
            if !chunk.mayHaveMore { return SourceRead(source: source, executions: read, coverage: .everything) }
            if let reached = coverage.extended(byReading: read) {
                return SourceRead(source: source, executions: read, coverage: reached)
            }
        }
        throw .malformedResponse(reason: "the listing did not move past \(boundary?.description ?? "its head")")
    }
}
