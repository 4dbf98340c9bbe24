/// A provider listing read in chunks, newest `createdAt` first.
///
/// Only the order by `createdAt` is trusted: how an upstream orders executions created at the
/// same instant may differ from the gateway's id order, so the merge never settles an execution
/// while another one with the same instant may still be unread.
public protocol ExecutionChunkSource: Sendable {
    /// The next executions of the listing (possibly repeating some already returned, which the
    /// merge drops), and whether more may follow.
    mutating func nextChunk() async throws(ProviderError) -> ExecutionChunk
}

public struct ExecutionChunk: Sendable {
    public var executions: [UnifiedExecution]
    public var mayHaveMore: Bool
    public var cache: CacheDisposition

    public init(executions: [UnifiedExecution], mayHaveMore: Bool, cache: CacheDisposition) {
        self.executions = executions
        self.mayHaveMore = mayHaveMore
        self.cache = cache
    }
}

/// Merges ordered chunked listings into one page of the unified order: every execution strictly
/// after the boundary that matches the filter, each once, at most `limit`, reading no chunk that
/// cannot change the page. When the request's ceiling on upstream calls refuses a read, the page
/// ends with what was found and says how far the scan got (`ProviderPage.scanCut`).
enum KeysetMerge {
    /// Bounds the chunks read from one source for one page, so an upstream that keeps announcing
    /// more without progress cannot hold a request forever.
    static let maximumChunksPerSource = 1000

    private struct Lane<Source: ExecutionChunkSource>: Sendable {
        var source: Source
        /// Kept executions not yet handed out, in listing order.
        var buffer: [UnifiedExecution] = []
        /// The oldest instant read so far; unread executions are created at or before it.
        var oldestRead: Timestamp?
        var ended = false
        var chunksRead = 0
        var seen: Set<String> = []
        /// The largest `sourceOffset` read (offset-paged listings).
        var deepestOffset: Int?

        /// The head can be handed out: nothing unread can come before it.
        var headIsSettled: Bool {
            guard let head = buffer.first else { return false }
            if ended { return true }
            guard let oldestRead else { return false }
            return head.createdAt > oldestRead
        }
    }

    static func page<Source: ExecutionChunkSource>(
        sources: [Source],
        after boundary: ExecutionSortKey?,
        filter: ExecutionFilter,
        limit: Int
    ) async throws(ProviderError) -> ProviderPage {
        var lanes = sources.map { Lane(source: $0) }
        var cache = CacheDisposition.hit
        var output: [UnifiedExecution] = []

        while output.count < limit {
            var candidate: Int?
            for index in lanes.indices where lanes[index].headIsSettled {
                if let current = candidate, !lanes[index].buffer[0].sortKey.precedes(lanes[current].buffer[0].sortKey) { continue }
                candidate = index
            }
            // Unsettled lanes, with the newest instant their unread part could hold (nil: unread).
            let unsettled = lanes.indices.filter { !lanes[$0].ended && !lanes[$0].headIsSettled }
            var toRead: [Int]
            if let candidate {
                // Read further only where something unread could come before the candidate.
                let candidateInstant = lanes[candidate].buffer[0].createdAt
                toRead = unsettled.filter { lanes[$0].oldestRead.map { $0 >= candidateInstant } ?? true }
            } else if unsettled.contains(where: { lanes[$0].oldestRead == nil }) {
                toRead = unsettled.filter { lanes[$0].oldestRead == nil }
            } else {
                // Nothing is settled: the lanes whose unread part could hold the newest executions are
                // read first, which may settle a candidate that spares the others a read.
                let newest = unsettled.compactMap { lanes[$0].oldestRead }.max()
                toRead = unsettled.filter { lanes[$0].oldestRead == newest }
            }
            if !toRead.isEmpty {
                let chunks: [(Int, Source, ExecutionChunk)]
                do throws(ProviderError) {
                    chunks = try await read(toRead.map { ($0, lanes[$0].source) })
                } catch .callCeilingReached(let ceiling) {
                    // Stop with what was found, if the scan got anywhere; otherwise the provider
                    // fails this page and stays where it stood.
                    guard let through = scannedThrough(lanes, after: boundary) else { throw .callCeilingReached(ceiling: ceiling) }
                    let deepest = lanes.compactMap(\.deepestOffset).max()
                    let cut = ScanCut(
                        scannedThrough: through, ceiling: ceiling,
                        offsetHint: deepest.flatMap { $0 == .max ? nil : $0 + 1 })
                    return ProviderPage(executions: output, exhausted: false, cache: cache, scanCut: cut)
                }
                for (index, source, chunk) in chunks {
                    lanes[index].source = source
                    lanes[index].chunksRead += 1
                    cache = cache.merged(with: chunk.cache)
                    absorb(chunk, into: &lanes[index], boundary: boundary, filter: filter)
                    if !lanes[index].ended && lanes[index].chunksRead >= maximumChunksPerSource {
                        throw .malformedResponse(reason: "the listing still announced more after \(maximumChunksPerSource) pages")
                    }
                }
                continue
            }
            guard let chosen = candidate else { break }
            output.append(lanes[chosen].buffer.removeFirst())
        }

        let exhausted = lanes.allSatisfy { $0.ended && $0.buffer.isEmpty }
        return ProviderPage(executions: output, exhausted: exhausted, cache: cache)
    }

    /// The last key (in listing order) up to which every unfinished lane has been read: each lane
    /// has read everything created after its oldest instant, so the bound lies just after the
    /// newest of those instants. nil when that is not beyond `boundary` (no progress).
    private static func scannedThrough<Source>(_ lanes: [Lane<Source>], after boundary: ExecutionSortKey?) -> ExecutionSortKey? {
        var through: ExecutionSortKey?
        for lane in lanes where !lane.ended {
            guard let oldest = lane.oldestRead, let key = ExecutionSortKey.above(oldest) else { return nil }
            if through.map({ key.precedes($0) }) ?? true { through = key }
        }
        guard let through else { return nil }
        if let boundary, !boundary.precedes(through) { return nil }
        return through
    }

    private static func absorb<Source>(
        _ chunk: ExecutionChunk, into lane: inout Lane<Source>, boundary: ExecutionSortKey?, filter: ExecutionFilter
    ) {
        var added = false
        for execution in chunk.executions {
            if lane.oldestRead.map({ execution.createdAt < $0 }) ?? true { lane.oldestRead = execution.createdAt }
            if let offset = execution.sourceOffset { lane.deepestOffset = max(lane.deepestOffset ?? offset, offset) }
            guard lane.seen.insert(execution.providerExecutionID).inserted else { continue }
            if let boundary, !boundary.precedes(execution.sortKey) { continue }
            guard filter.matches(execution) else { continue }
            lane.buffer.append(execution)
            added = true
        }
        if added { lane.buffer.sort { $0.sortKey.precedes($1.sortKey) } }
        if !chunk.mayHaveMore { lane.ended = true }
    }

    /// Reads one chunk from each named source at once; the first failure (in source order) wins.
    private static func read<Source: ExecutionChunkSource>(
        _ work: [(index: Int, source: Source)]
    ) async throws(ProviderError) -> [(Int, Source, ExecutionChunk)] {
        if work.count == 1, var source = work.first?.source, let index = work.first?.index {
            let chunk = try await source.nextChunk()
            return [(index, source, chunk)]
        }
        let results = await withTaskGroup(of: (Int, Result<(Source, ExecutionChunk), ProviderError>).self) { group in
            for (index, source) in work {
                group.addTask {
                    var source = source
                    // Assigned, then returned after the do/catch: returning from inside a
                    // `do throws(ProviderError)` in a task-group closure is miscompiled by Swift 6.3
                    // in optimised builds (see ExecutionsService.join).
                    let result: Result<(Source, ExecutionChunk), ProviderError>
                    do throws(ProviderError) {
                        let chunk = try await source.nextChunk()
                        result = .success((source, chunk))
                    } catch {
                        result = .failure(error)
                    }
                    return (index, result)
                }
            }
            var collected: [(Int, Result<(Source, ExecutionChunk), ProviderError>)] = []
            for await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }
        }
        var chunks: [(Int, Source, ExecutionChunk)] = []
        for (index, result) in results {
            switch result {
            case .success(let (source, chunk)): chunks.append((index, source, chunk))
            case .failure(let error): throw error
            }
        }
        return chunks
    }
}
