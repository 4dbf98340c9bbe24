import GatewayProviders

/// One execution as an index keeps it: what pages and filters need and nothing else, in few
/// bytes. Instants are plain nanoseconds with a sentinel for "none" (an optional would add
/// padding), strings many executions share (workflow, provider status) are one copy per index
/// (see `StringInterner`), and the raw provider record is not kept.
struct IndexedExecution: Sendable {
    static let none = Int64.min

    /// The provider's configured name: one string for the whole index, shared by every record.
    var provider: String
    var providerExecutionID: String
    var createdAtNanoseconds: Int64
    var startedAtNanoseconds: Int64
    var endedAtNanoseconds: Int64
    var durationMilliseconds: Int64
    var attemptCount: Int64
    var workflowID: String?
    var workflowName: String?
    var name: String?
    var providerStatus: String?
    var searchableValues: [String]
    /// `ExecutionStatus` by its position in `allCases`; `UInt8.max`: unmapped.
    var statusCode: UInt8
    /// 0 false, 1 true, 2 the provider has no such notion.
    var testFlag: UInt8

    init(_ execution: UnifiedExecution, interner: inout StringInterner) {
        provider = interner.shared(execution.provider)
        providerExecutionID = execution.providerExecutionID
        createdAtNanoseconds = execution.createdAt.nanosecondsSinceEpoch
        startedAtNanoseconds = execution.startedAt?.nanosecondsSinceEpoch ?? Self.none
        endedAtNanoseconds = execution.endedAt?.nanosecondsSinceEpoch ?? Self.none
        durationMilliseconds = execution.durationMs ?? Self.none
        attemptCount = execution.attempts ?? Self.none
        workflowID = execution.workflow.map { interner.shared($0.id) }
        workflowName = execution.workflow?.name.map { interner.shared($0) }
        name = execution.name
        providerStatus = execution.providerStatus.map { interner.shared($0) }
        searchableValues = execution.searchableValues
        statusCode = execution.status.flatMap { ExecutionStatus.allCases.firstIndex(of: $0) }.map(UInt8.init) ?? .max
        testFlag = execution.isTest.map { $0 ? 1 : 0 } ?? 2
    }

    /// The record in the unified shape, for a page (`raw` is null: the index does not keep it).
    var unified: UnifiedExecution {
        func instant(_ nanoseconds: Int64) -> Timestamp? {
            nanoseconds == Self.none ? nil : Timestamp(nanosecondsSinceEpoch: nanoseconds)
        }
        return UnifiedExecution(
            provider: provider,
            providerExecutionID: providerExecutionID,
            workflow: workflowID.map { WorkflowReference(id: $0, name: workflowName) },
            name: name,
            status: status,
            providerStatus: providerStatus,
            createdAt: createdAt,
            startedAt: instant(startedAtNanoseconds),
            endedAt: instant(endedAtNanoseconds),
            durationMs: durationMilliseconds == Self.none ? nil : durationMilliseconds,
            isTest: isTest,
            attempts: attemptCount == Self.none ? nil : attemptCount,
            searchableValues: searchableValues,
            raw: .null
        )
    }

    // MARK: - Order

    /// True when `self` comes before `other` in the listing. Both belong to one provider, so the
    /// `<provider>:` prefix of their unified ids is common and the provider ids decide.
    func precedes(_ other: IndexedExecution) -> Bool {
        if createdAtNanoseconds != other.createdAtNanoseconds { return createdAtNanoseconds > other.createdAtNanoseconds }
        return other.providerExecutionID.utf8.lexicographicallyPrecedes(providerExecutionID.utf8)
    }

    /// Where `self` stands against any sort key (another provider's included): negative when it
    /// comes before `key` in the listing, 0 when it is `key`, positive when it comes after.
    func compare(to key: ExecutionSortKey) -> Int {
        let instant = key.createdAt.nanosecondsSinceEpoch
        if createdAtNanoseconds != instant { return createdAtNanoseconds > instant ? -1 : 1 }
        // Ids descending: a larger unified id comes first. Compared byte by byte as
        // `<provider>:<id>` without building that string.
        var other = key.id.utf8.makeIterator()
        func differs(_ ours: String.UTF8View) -> Int? {
            for byte in ours {
                guard let theirs = other.next() else { return -1 }  // key's id is a prefix of ours: ours is larger
                if byte != theirs { return byte > theirs ? -1 : 1 }
            }
            return nil
        }
        if let order = differs(provider.utf8) ?? differs(":".utf8) ?? differs(providerExecutionID.utf8) { return order }
        return other.next() == nil ? 0 : 1
    }

    var sortKey: ExecutionSortKey { ExecutionSortKey(createdAt: createdAt, id: id) }

    // MARK: - Memory

    /// An estimate of what the record costs the index: its own bytes, its slot in the id map,
    /// and the strings it does not share (Swift keeps strings of up to 15 bytes inline).
    var estimatedBytes: Int {
        func heap(_ text: String?) -> Int { text.map { $0.utf8.count > 15 ? 32 + $0.utf8.count : 0 } ?? 0 }
        // The id map: a key and an instant per entry, at a load factor of about three quarters.
        var bytes = MemoryLayout<IndexedExecution>.stride + (MemoryLayout<String>.stride + MemoryLayout<Int64>.stride) * 4 / 3
        bytes += heap(providerExecutionID) + heap(name)
        if !searchableValues.isEmpty {
            bytes += 32 + searchableValues.reduce(0) { $0 + MemoryLayout<String>.stride + heap($1) }
        }
        return bytes
    }
}

extension IndexedExecution: FilterableExecution {
    var status: ExecutionStatus? {
        Int(statusCode) < ExecutionStatus.allCases.count ? ExecutionStatus.allCases[Int(statusCode)] : nil
    }
    var createdAt: Timestamp { Timestamp(nanosecondsSinceEpoch: createdAtNanoseconds) }
    var isTest: Bool? { testFlag == 2 ? nil : testFlag == 1 }
    var id: String { provider + ":" + providerExecutionID }
}

/// One copy of each string many records repeat (workflow ids and names, provider statuses): a
/// string read from a provider's answer has storage of its own, so a thousand executions of one
/// workflow would otherwise hold a thousand copies of its name.
struct StringInterner: Sendable {
    private var strings: Set<String> = []

    mutating func shared(_ text: String) -> String {
        // Short strings live inline in the record anyway.
        guard text.utf8.count > 15 else { return text }
        return strings.insert(text).memberAfterInsert
    }

    /// What the shared copies cost.
    var estimatedBytes: Int { strings.reduce(0) { $0 + 48 + $1.utf8.count } }
}
