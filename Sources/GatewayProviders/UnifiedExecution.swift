public import GatewayJSON

/// The unified status vocabulary of docs/api.md, The unified execution.
public enum ExecutionStatus: String, Sendable, CaseIterable, Hashable {
    case queued, running, waiting, paused, succeeded, failed, cancelled

    /// Finished executions never change again, so their details may be cached for long.
    public var isTerminal: Bool {
        switch self {
        case .succeeded, .failed, .cancelled: true
        case .queued, .running, .waiting, .paused: false
        }
    }
}

public struct WorkflowReference: Sendable, Equatable {
    public var id: String
    public var name: String?

    public init(id: String, name: String?) {
        self.id = id
        self.name = name
    }
}

/// One execution in the gateway's own shape (docs/api.md, The unified execution), plus what the gateway needs to
/// filter and page it.
public struct UnifiedExecution: Sendable, Equatable {
    /// The configured provider name (what clients see), not the provider type.
    public var provider: String
    public var providerExecutionID: String
    public var workflow: WorkflowReference?
    public var name: String?
    /// nil when the provider reported a status the contract does not map.
    public var status: ExecutionStatus?
    public var providerStatus: String?
    public var createdAt: Timestamp
    public var startedAt: Timestamp?
    public var endedAt: Timestamp?
    public var durationMs: Int64?
    /// nil when the provider has no such notion.
    public var isTest: Bool?
    public var attempts: Int64?
    /// Parameter values the `q` filter searches besides the id (Kaizen params, B3OS requestPayload).
    public var searchableValues: [String]
    /// The provider's record exactly as it was received (`include=raw`).
    public var raw: JSONValue
    /// Where the record sat in an offset-paged listing (B3OS), to resume near it.
    public var sourceOffset: Int?

    public init(
        provider: String,
        providerExecutionID: String,
        workflow: WorkflowReference?,
        name: String?,
        status: ExecutionStatus?,
        providerStatus: String?,
        createdAt: Timestamp,
        startedAt: Timestamp?,
        endedAt: Timestamp?,
        durationMs: Int64?,
        isTest: Bool?,
        attempts: Int64?,
        searchableValues: [String],
        raw: JSONValue,
        sourceOffset: Int? = nil
    ) {
        self.provider = provider
        self.providerExecutionID = providerExecutionID
        self.workflow = workflow
        self.name = name
        self.status = status
        self.providerStatus = providerStatus
        self.createdAt = createdAt
        self.startedAt = startedAt
        self.endedAt = endedAt
        self.durationMs = durationMs
        self.isTest = isTest
        self.attempts = attempts
        self.searchableValues = searchableValues
        self.raw = raw
        self.sourceOffset = sourceOffset
    }

    /// `<provider name>:<provider's id>`, what `GET /executions/{id}` takes.
    public var id: String { provider + ":" + providerExecutionID }

    public var sortKey: ExecutionSortKey { ExecutionSortKey(createdAt: createdAt, id: id) }
}

/// The global order: `createdAt` descending, then `id` descending (compared as UTF-8 bytes, so the
/// order is the same on every replica and in every language).
public struct ExecutionSortKey: Sendable, Hashable, CustomStringConvertible {
    public var createdAt: Timestamp
    public var id: String

    public init(createdAt: Timestamp, id: String) {
        self.createdAt = createdAt
        self.id = id
    }

    /// True when `self` comes before `other` in the listing (newer, or same instant and larger id).
    public func precedes(_ other: ExecutionSortKey) -> Bool {
        if createdAt != other.createdAt { return createdAt > other.createdAt }
        return other.id.utf8.lexicographicallyPrecedes(id.utf8)
    }

    public var description: String { "\(createdAt.rfc3339)/\(id)" }

    /// The key just above every execution created at `instant`: executions created later precede
    /// it (or equal it), and those created at or before `instant` come after it. nil at the end of
    /// the representable instants. (The empty id sorts last among executions of one instant.)
    public static func above(_ instant: Timestamp) -> ExecutionSortKey? {
        let (justAfter, overflow) = instant.nanosecondsSinceEpoch.addingReportingOverflow(1)
        if overflow { return nil }
        return ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: justAfter), id: "")
    }
}
