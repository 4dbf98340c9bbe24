import GatewayIndex
import GatewayProviders
import GatewayTestSupport
import Testing

/// Replicas hand indexes to each other as bytes: what one publishes, another rebuilds exactly,
/// and bytes that are not a snapshot (damaged, cut short, from another format) are refused.
@Suite struct IndexSnapshotTests {
    static func varied(_ random: inout SplitMix64, id: Int) -> UnifiedExecution {
        func maybe<T>(_ value: T) -> T? { Bool.random(using: &random) ? value : nil }
        let statuses = ExecutionStatus.allCases
        return UnifiedExecution(
            provider: "kapso", providerExecutionID: "ex-\(id)-ü✓",
            workflow: maybe(WorkflowReference(id: "wf-\(id % 7)", name: maybe("Fakturierung \(id % 3) 🧾"))),
            name: maybe("run \(id)"), status: maybe(statuses[id % statuses.count]), providerStatus: maybe("native-\(id % 5)"),
            createdAt: Timestamp(nanosecondsSinceEpoch: 1_790_000_000_000_000_000 + Int64(id % 97) * 1_000_000_123),
            startedAt: maybe(Timestamp(nanosecondsSinceEpoch: -Int64(id))), endedAt: maybe(Timestamp(nanosecondsSinceEpoch: .max - Int64(id))),
            durationMs: maybe(Int64.min + Int64(id)), isTest: maybe(id % 2 == 0), attempts: maybe(Int64(id)),
            searchableValues: (0..<(id % 4)).map { "term \($0) \(String(repeating: "x", count: id % 40))" }, raw: .null)
    }

    static func snapshot(of index: ExecutionIndex, memo: [UInt8] = [7, 0, 255]) -> (header: [UInt8], segments: [[UInt8]]) {
        (IndexSnapshot.header(coverage: index.coverage, memo: memo), IndexSnapshot.segments(of: index))
    }

    @Test("An index rebuilt from its snapshot lists the same executions, field for field, with the same coverage")
    func roundTrip() throws {
        var random = SplitMix64(seed: 11)
        var index = ExecutionIndex()
        let count = IndexSnapshot.recordsPerSegment * 2 + 17
        index.upsert((0..<count).map { Self.varied(&random, id: $0) })
        let boundary = ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: 1_790_000_000_000_000_000), id: "ex-ü")
        index.setCoverage(.through(boundary), of: "wf-1")
        index.setCoverage(.everything, of: "wf-2")
        index.setCoverage(.nothing, of: "wf-3")

        let (header, segments) = Self.snapshot(of: index)
        #expect(segments.count == 3, "segments of \(IndexSnapshot.recordsPerSegment), the last one partial")
        let (rebuilt, memo) = try IndexSnapshot.index(provider: "kapso", header: header, segments: segments)
        #expect(memo == [7, 0, 255])
        #expect(rebuilt.coverage == index.coverage)
        let original = index.page(matching: ExecutionFilter(), after: nil, limit: count + 1, sources: ["wf-2"]).executions
        let copy = rebuilt.page(matching: ExecutionFilter(), after: nil, limit: count + 1, sources: ["wf-2"]).executions
        #expect(original.count == count)
        #expect(copy == original)
    }

    @Test("New executions at the head change only the newest segment")
    func headChangesTouchTheLastSegment() {
        var random = SplitMix64(seed: 12)
        var index = ExecutionIndex()
        index.upsert((0..<IndexSnapshot.recordsPerSegment * 3).map { Self.varied(&random, id: $0) })
        let before = IndexSnapshot.segments(of: index)
        var newer = Self.varied(&random, id: 999_999)
        newer.createdAt = Timestamp(nanosecondsSinceEpoch: 1_800_000_000_000_000_000)
        index.upsert([newer])
        let after = IndexSnapshot.segments(of: index)
        #expect(after.count == 4)
        #expect(Array(after.prefix(3)) == before)
    }

    @Test("Damaged, truncated and foreign bytes are refused, never trusted")
    func malformedSnapshotsAreRefused() {
        var random = SplitMix64(seed: 13)
        var index = ExecutionIndex()
        index.upsert((0..<40).map { Self.varied(&random, id: $0) })
        index.setCoverage(.everything, of: "organisation")
        let (header, segments) = Self.snapshot(of: index)
        let segment = segments[0]
        // Every truncation of a segment and of the header is refused or yields fewer records,
        // never a crash; a cut inside a record is always refused.
        for length in 0..<segment.count {
            let result = Result { () throws(SnapshotError) in
                try IndexSnapshot.index(provider: "p", header: header, segments: [Array(segment.prefix(length))])
            }
            if case .success(let (partial, _)) = result { #expect(partial.count < 40) }
        }
        for length in 0..<header.count {
            #expect(throws: SnapshotError.self) {
                try IndexSnapshot.index(provider: "p", header: Array(header.prefix(length)), segments: segments)
            }
        }
        // Every single-byte change: refused or read as some other valid snapshot, never a crash.
        for position in 0..<segment.count {
            for flip: UInt8 in [0x01, 0x80, 0xFF] {
                var damaged = segment
                damaged[position] ^= flip
                _ = try? IndexSnapshot.index(provider: "p", header: header, segments: [damaged])
            }
        }
        #expect(throws: SnapshotError.self) { try IndexSnapshot.index(provider: "p", header: [2] + header.dropFirst(), segments: []) }
        #expect(throws: SnapshotError.self) { try IndexSnapshot.index(provider: "p", header: header + [0], segments: []) }
        // An integer longer than 64 bits.
        #expect(throws: SnapshotError.self) {
            try IndexSnapshot.index(provider: "p", header: [1] + [UInt8](repeating: 0xFF, count: 11) + [0], segments: [])
        }
    }
}
