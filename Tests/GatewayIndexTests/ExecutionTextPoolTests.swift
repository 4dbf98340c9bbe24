@testable import GatewayIndex
import GatewayProviders
import GatewayTestSupport
import Testing

/// The index's text pool: every text comes back byte for byte, and the id map finds exactly the
/// ids it holds, whatever their bytes and however many.
@Suite struct ExecutionTextPoolTests {
    static let awkwardTexts = [
        "", "a", "exactly-15-bytes", "ünïcødé-ид-🚀-ジョブ", "e\u{301}", "\r\n", String(repeating: "x", count: 100_000),
        String(repeating: "é", count: 70),  // 140 bytes: a two-byte length
    ]

    @Test func textsComeBackByteForByte() {
        var pool = ExecutionTextPool()
        var blocks: [(Int, String, String?, [String])] = []
        for (position, text) in Self.awkwardTexts.enumerated() {
            let name: String? = position % 2 == 0 ? nil : text
            let values = Array(Self.awkwardTexts.prefix(position))
            let block = pool.append(instant: Int64(position) - 3, id: text, name: name, searchableValues: values)
            pool.register(block)
            blocks.append((block, text, name, values))
        }
        for (position, (block, id, name, values)) in blocks.enumerated() {
            let text = pool.text(of: block)
            #expect(text.id.utf8.elementsEqual(id.utf8) && text.name == name && text.searchableValues == values)
            #expect(pool.id(of: block).utf8.elementsEqual(id.utf8))
            #expect(pool.instant(of: block) == Int64(position) - 3)
            #expect(pool.holds(id: id, name: name, searchableValues: values, at: block))
            #expect(!pool.holds(id: id, name: name, searchableValues: values + [""], at: block))
            #expect(!pool.holds(id: id + "x", name: name, searchableValues: values, at: block))
            #expect(!pool.holds(id: id, name: name == nil ? "" : nil, searchableValues: values, at: block))
            #expect(pool.block(forID: id) == block)
        }
        #expect(pool.idCount == Self.awkwardTexts.count && pool.abandonedBytes == 0)
        // Not canonically equivalent forms, prefixes and extensions of held ids are other ids.
        for absent in ["é", "\r", "\n", "exactly-15-byte", "exactly-15-bytes ", "A", " "] {
            #expect(pool.block(forID: absent) == nil, "\(absent)")
        }
        #expect(ExecutionTextPool().block(forID: "") == nil)
    }

    @Test func manyIdsAndRepeatedRegistrationsKeepOneEntryEach() {
        var random = SplitMix64(seed: 7)
        var pool = ExecutionTextPool()
        var latest: [String: Int] = [:]
        for round in 0..<30_000 {
            // Few distinct ids, so most registrations replace an earlier block of the same id.
            let id = "exec-\(Int.random(in: 0..<5_000, using: &random))"
            let block = pool.append(instant: Int64(round), id: id, name: "n", searchableValues: [id, "shared"])
            let replaced = pool.register(block)
            #expect(replaced == latest[id])
            latest[id] = block
        }
        #expect(pool.idCount == latest.count)
        for (id, block) in latest {
            #expect(pool.block(forID: id) == block)
        }
        for absent in 5_000..<5_200 { #expect(pool.block(forID: "exec-\(absent)") == nil) }
        // Everything but the latest block of each id is abandoned.
        let live = latest.values.reduce(0) { $0 + pool.length(of: $1) }
        #expect(pool.abandonedBytes == pool.bytes.count - live)
        // Re-registering the block an id already maps to abandons nothing.
        if let (_, block) = latest.first {
            let before = pool.abandonedBytes
            #expect(pool.register(block) == block && pool.abandonedBytes == before)
        }
    }

    @Test func lengthsAreEncodedForEveryMagnitude() {
        var bytes = ContiguousArray<UInt8>()
        let values = [0, 1, 127, 128, 255, 16_383, 16_384, 1 << 31, Int.max]
        for value in values { ExecutionTextPool.appendLEB128(value, to: &bytes) }
        var offset = 0
        let decoded = bytes.withUnsafeBufferPointer { buffer in values.map { _ in ExecutionTextPool.readLEB128(buffer, at: &offset) } }
        #expect(decoded == values && offset == bytes.count)
    }

    @Test func theIndexGivesBackExactlyWhatItWasGiven() {
        var index = ExecutionIndex()
        let executions = Self.awkwardTexts.enumerated().map { position, text in
            UnifiedExecution(
                provider: "p", providerExecutionID: text.isEmpty ? "empty" : text,
                workflow: WorkflowReference(id: "wf-\(position % 3)", name: position % 2 == 0 ? nil : "Workflow ✔︎ \(position % 3)"),
                name: position % 2 == 0 ? nil : text, status: .running, providerStatus: position % 2 == 0 ? nil : "InProgress",
                createdAt: Timestamp(nanosecondsSinceEpoch: 1_790_000_000_000_000_000 + Int64(position)),
                startedAt: Timestamp(nanosecondsSinceEpoch: 1), endedAt: nil, durationMs: position % 2 == 0 ? nil : 12,
                isTest: position % 3 == 0 ? nil : position % 3 == 1, attempts: 2, searchableValues: Array(Self.awkwardTexts.prefix(position)),
                raw: .null
            )
        }
        index.upsert(executions)
        index.setCoverage(.everything, of: "all")
        let page = index.page(matching: ExecutionFilter(), after: nil, limit: 100)
        #expect(page.executions == executions.reversed())
        let search = index.page(matching: ExecutionFilter(searchTerms: ["ジョブ"]), after: nil, limit: 100)
        #expect(search.executions.map(\.providerExecutionID) == executions.dropFirst(3).reversed().map(\.providerExecutionID))
    }

    @Test func changedTextsAreCompactedAwayAndTheEstimateFollows() {
        var index = ExecutionIndex()
        let ids = (0..<2_000).map { "execution-\($0)" }
        func reading(_ id: String, version: Int) -> UnifiedExecution {
            UnifiedExecution(
                provider: "p", providerExecutionID: id, workflow: nil, name: "run \(version) of \(id)", status: .succeeded,
                providerStatus: nil, createdAt: Timestamp(nanosecondsSinceEpoch: Int64(id.utf8.count)), startedAt: nil, endedAt: nil,
                durationMs: nil, isTest: nil, attempts: nil, searchableValues: [String(repeating: "v", count: 100)], raw: .null
            )
        }
        index.upsert(ids.map { reading($0, version: 0) })
        let settled = index.estimatedBytes
        for version in 1...20 {
            index.upsert(ids.map { reading($0, version: version) })
        }
        #expect(index.count == ids.count)
        // Twenty rewrites of every text: without compaction the pool would hold 21 copies.
        #expect(index.estimatedBytes < settled * 3)
        index.setCoverage(.everything, of: "all")
        let page = index.page(matching: ExecutionFilter(searchTerms: ["EXECUTION-1999"]), after: nil, limit: 10)
        #expect(page.executions.map(\.providerExecutionID) == ["execution-1999"])
        #expect(page.executions.first?.name == "run 20 of execution-1999")
        #expect(index.contains(providerExecutionID: "execution-0") && !index.contains(providerExecutionID: "execution-2000"))
    }

    /// `q` read from the pool in place means what `ExecutionFilter.matches` means on the unified
    /// record, for ASCII and for text where bytes and characters part ways.
    @Test func searchingThePooledTextAgreesWithTheFilterOnUnifiedRecords() {
        let pieces = ["a", "B", "ab", "-", "7", "é", "e\u{301}", "\r", "\n", "\r\n", "K", "\u{212A}", "`", "\u{1FEF}", "ß", "SS", ":", "p"]
        let terms = pieces + ["AB", "b-7", "p:a", ":A", "\r\n", "E\u{301}", "k", "ss", "a\r", "É"]
        var random = SplitMix64(seed: 11)
        func text() -> String { (0..<Int.random(in: 0...5, using: &random)).map { _ in pieces.randomElement(using: &random) ?? "" }.joined() }
        var used = Set<String>()
        let executions = (0..<400).compactMap { position -> UnifiedExecution? in
            let id = text() + "\(position)"
            guard used.insert(id).inserted else { return nil }
            return UnifiedExecution(
                provider: "p", providerExecutionID: id, workflow: nil, name: nil, status: .succeeded, providerStatus: nil,
                createdAt: Timestamp(nanosecondsSinceEpoch: Int64(position % 17)), startedAt: nil, endedAt: nil, durationMs: nil,
                isTest: nil, attempts: nil, searchableValues: (0..<Int.random(in: 0...3, using: &random)).map { _ in text() }, raw: .null
            )
        }
        var index = ExecutionIndex()
        index.upsert(executions)
        index.setCoverage(.everything, of: "all")
        let listing = executions.sorted { $0.sortKey.precedes($1.sortKey) }
        for term in terms {
            for pair in [[term], [term, terms.randomElement(using: &random) ?? ""]] {
                let filter = ExecutionFilter(searchTerms: pair)
                let page = index.page(matching: filter, after: nil, limit: 1_000)
                #expect(page.executions.map(\.id) == listing.filter(filter.matches).map(\.id), "\(pair)")
            }
        }
    }

    /// A streamed read builds the index one upsert of everything builds.
    @Test func anIndexBuiltAsTheAnswerStreamsInIsTheIndexOfTheWholeAnswer() {
        var random = SplitMix64(seed: 12)
        let count = 3_000
        // Mostly newest first, as Kaizen answers, with stretches out of order and a few repeated readings.
        var executions = (0..<count).map { ExecutionIndexTests.random(&random, id: $0) }
        executions.sort { $0.sortKey.precedes($1.sortKey) }
        executions.swapAt(5, count - 5)
        executions += executions.prefix(40).map { reading in
            var later = reading
            later.status = .failed
            return later
        }
        let builder = StreamedIndexBuilder()
        executions.forEach(builder.add)
        var built = builder.finish()
        var whole = ExecutionIndex()
        whole.upsert(executions)
        built.setCoverage(.everything, of: "all")
        whole.setCoverage(.everything, of: "all")
        let builtPage = built.page(matching: ExecutionFilter(), after: nil, limit: count + 100)
        #expect(built.count == count && builtPage.executions == whole.page(matching: ExecutionFilter(), after: nil, limit: count + 100).executions)
        #expect(builtPage.executions.filter { $0.status == .failed }.count >= 40)
    }

    /// What `gateway_index_bytes` reports: records, text pool and id map as allocated, and no
    /// per-execution heap block hiding outside it.
    @Test func theEstimateCountsRecordsTextAndIdMap() {
        #expect(MemoryLayout<IndexedExecution>.stride == 64, "a record is numbers only")
        var random = SplitMix64(seed: 13)
        let executions = (0..<10_000).map { ExecutionIndexTests.random(&random, id: $0, workflow: "workflow-\($0 % 20)-of-the-organisation") }
        var index = ExecutionIndex()
        index.upsert(executions)
        let records = executions.count * MemoryLayout<IndexedExecution>.stride
        // Each block: the instant, the id with its length, no name, no values.
        let text = executions.reduce(0) { $0 + 8 + 1 + $1.providerExecutionID.utf8.count + 1 + 1 }
        let idMap = executions.count * 4 / 3 * MemoryLayout<Int>.stride
        #expect(index.estimatedBytes >= records + text + idMap)
        #expect(index.estimatedBytes <= 2 * (records + text + idMap) + 64 * 1024)
    }
}
