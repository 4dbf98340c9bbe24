import GatewayProviders

/// One execution as an index keeps it: what pages and filters need, in a fixed-size record of
/// numbers without references. Instants are plain nanoseconds with a sentinel for "none" (an
/// optional would add padding); the execution's own text lives in its index's
/// `ExecutionTextPool` (`text` is its block there), and strings many executions share (workflow,
/// provider status) are handles into its `StringInterner`. The raw provider record is not kept.
struct IndexedExecution: Sendable {
    static let none = Int64.min

    var createdAtNanoseconds: Int64
    var startedAtNanoseconds: Int64
    var endedAtNanoseconds: Int64
    var durationMilliseconds: Int64
    var attemptCount: Int64
    /// The offset of the execution's block in the index's text pool.
    var text: Int
    var workflowID: UInt32
    var workflowName: UInt32
    var providerStatus: UInt32
    /// `ExecutionStatus` by its position in `allCases`; `UInt8.max`: unmapped.
    var statusCode: UInt8
    /// 0 false, 1 true, 2 the provider has no such notion.
    var testFlag: UInt8

    init(_ execution: UnifiedExecution, text: Int, interner: inout StringInterner) {
        createdAtNanoseconds = execution.createdAt.nanosecondsSinceEpoch
        startedAtNanoseconds = execution.startedAt?.nanosecondsSinceEpoch ?? Self.none
        endedAtNanoseconds = execution.endedAt?.nanosecondsSinceEpoch ?? Self.none
        durationMilliseconds = execution.durationMs ?? Self.none
        attemptCount = execution.attempts ?? Self.none
        self.text = text
        workflowID = interner.handle(for: execution.workflow?.id)
        workflowName = interner.handle(for: execution.workflow?.name)
        providerStatus = interner.handle(for: execution.providerStatus)
        statusCode = execution.status.flatMap { ExecutionStatus.allCases.firstIndex(of: $0) }.map(UInt8.init) ?? .max
        testFlag = execution.isTest.map { $0 ? 1 : 0 } ?? 2
    }

    var status: ExecutionStatus? {
        Int(statusCode) < ExecutionStatus.allCases.count ? ExecutionStatus.allCases[Int(statusCode)] : nil
    }

    var createdAt: Timestamp { Timestamp(nanosecondsSinceEpoch: createdAtNanoseconds) }

    var isTest: Bool? { testFlag == 2 ? nil : testFlag == 1 }

    // MARK: - Order

    /// True when `self` comes before `other` in the listing. Both belong to one index, so one
    /// provider: the `<provider>:` prefix of their unified ids is common and the provider ids
    /// (read from `pool`, the index's text buffer) decide.
    func precedes(_ other: IndexedExecution, in pool: UnsafeBufferPointer<UInt8>) -> Bool {
        if createdAtNanoseconds != other.createdAtNanoseconds { return createdAtNanoseconds > other.createdAtNanoseconds }
        return ExecutionTextPool.idBytes(of: other.text, in: pool).lexicographicallyPrecedes(ExecutionTextPool.idBytes(of: text, in: pool))
    }

    /// Where `self` (of `provider`) stands against any sort key (another provider's included):
    /// negative when it comes before `key` in the listing, 0 when it is `key`, positive when it
    /// comes after.
    func compare(to key: ExecutionSortKey, provider: String, in pool: UnsafeBufferPointer<UInt8>) -> Int {
        let instant = key.createdAt.nanosecondsSinceEpoch
        if createdAtNanoseconds != instant { return createdAtNanoseconds > instant ? -1 : 1 }
        // Ids descending: a larger unified id comes first. Compared byte by byte as
        // `<provider>:<id>` without building that string.
        var other = key.id.utf8.makeIterator()
        func differs(_ ours: some Sequence<UInt8>) -> Int? {
            for byte in ours {
                guard let theirs = other.next() else { return -1 }  // key's id is a prefix of ours: ours is larger
                if byte != theirs { return byte > theirs ? -1 : 1 }
            }
            return nil
        }
        if let order = differs(provider.utf8) ?? differs(":".utf8) ?? differs(ExecutionTextPool.idBytes(of: text, in: pool)) {
            return order
        }
        return other.next() == nil ? 0 : 1
    }
}

/// An indexed execution with the index's text and shared strings beside it: what a filter, a
/// page and a synchroniser read of it. Its strings are built when asked for.
struct IndexedExecutionView: FilterableExecution {
    let record: IndexedExecution
    let provider: String
    let pool: ExecutionTextPool
    let interner: StringInterner

    var status: ExecutionStatus? { record.status }
    var createdAt: Timestamp { record.createdAt }
    var isTest: Bool? { record.isTest }
    var workflowID: String? { interner.string(record.workflowID) }
    var providerExecutionID: String { pool.id(of: record.text) }
    var id: String { provider + ":" + providerExecutionID }
    var searchableValues: [String] { pool.text(of: record.text).searchableValues }

    var sortKey: ExecutionSortKey { ExecutionSortKey(createdAt: createdAt, id: id) }

    /// The record in the unified shape, for a page (`raw` is null: the index does not keep it).
    var unified: UnifiedExecution {
        func instant(_ nanoseconds: Int64) -> Timestamp? {
            nanoseconds == IndexedExecution.none ? nil : Timestamp(nanosecondsSinceEpoch: nanoseconds)
        }
        let text = pool.text(of: record.text)
        return UnifiedExecution(
            provider: provider,
            providerExecutionID: text.id,
            workflow: workflowID.map { WorkflowReference(id: $0, name: interner.string(record.workflowName)) },
            name: text.name,
            status: status,
            providerStatus: interner.string(record.providerStatus),
            createdAt: createdAt,
            startedAt: instant(record.startedAtNanoseconds),
            endedAt: instant(record.endedAtNanoseconds),
            durationMs: record.durationMilliseconds == IndexedExecution.none ? nil : record.durationMilliseconds,
            isTest: isTest,
            attempts: record.attemptCount == IndexedExecution.none ? nil : record.attemptCount,
            searchableValues: text.searchableValues,
            raw: .null
        )
    }
}

/// One copy of each string many records repeat (workflow ids and names, provider statuses),
/// named in records by a 4-byte handle: a thousand executions of one workflow hold its name once.
struct StringInterner: Sendable {
    /// The handle of no string (nil).
    static let absent = UInt32.max
    private var strings: [String] = []
    private var handles: [String: UInt32] = [:]

    /// The handle of `text`, added when new. nil gives `absent`.
    mutating func handle(for text: String?) -> UInt32 {
        guard let text else { return Self.absent }
        // 4 billion distinct workflow names and statuses cannot fit any index budget; past that
        // (never in practice) a string is not kept rather than given another's handle.
        guard strings.count < Int(Self.absent) else { return handles[text] ?? Self.absent }
        let candidate = UInt32(truncatingIfNeeded: strings.count)
        let (handle, isNew) = Self.findOrInsert(&handles[text], candidate)
        if isNew { strings.append(text) }
        return handle
    }

    /// Through the dictionary's in-place accessor: one lookup whether found or inserted.
    private static func findOrInsert(_ slot: inout UInt32?, _ candidate: UInt32) -> (UInt32, Bool) {
        if let existing = slot { return (existing, false) }
        slot = candidate
        return (candidate, true)
    }

    func string(_ handle: UInt32) -> String? {
        Int(handle) < strings.count ? strings[Int(handle)] : nil
    }

    /// What the shared copies cost: each string (inline up to 15 bytes, else a heap block), its
    /// slot in the table and in the dictionary.
    var estimatedBytes: Int {
        strings.reduce(0) { total, text in
            let heap = text.utf8.count > 15 ? 32 + text.utf8.count : 0
            return total + heap + MemoryLayout<String>.stride + (MemoryLayout<String>.stride + MemoryLayout<UInt32>.stride) * 4 / 3
        }
    }
}
