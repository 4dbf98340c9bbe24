/// The filters of `GET /executions`, with one meaning for every provider (docs/api.md, GET /executions).
///
/// Adapters push what their provider supports upstream, and must still return only records for
/// which `matches` is true, so a filter means the same thing whichever provider answers.
public struct ExecutionFilter: Sendable, Hashable {
    /// nil: any status. Records whose status is unmapped (nil) never match a status filter.
    public var statuses: Set<ExecutionStatus>?
    public var workflowID: String?
    /// Inclusive bounds on `createdAt`.
    public var createdAfter: Timestamp?
    public var createdBefore: Timestamp?
    /// OR-ed, case-insensitive substrings of the id or of a parameter value. Empty: no search.
    public var searchTerms: [String]
    public var isTest: Bool?

    public init(
        statuses: Set<ExecutionStatus>? = nil,
        workflowID: String? = nil,
        createdAfter: Timestamp? = nil,
        createdBefore: Timestamp? = nil,
        searchTerms: [String] = [],
        isTest: Bool? = nil
    ) {
        self.statuses = statuses
        self.workflowID = workflowID
        self.createdAfter = createdAfter
        self.createdBefore = createdBefore
        self.searchTerms = searchTerms
        self.isTest = isTest
    }

    public func matches(_ execution: some FilterableExecution) -> Bool {
        if let statuses {
            guard let status = execution.status, statuses.contains(status) else { return false }
        }
        if let workflowID, execution.workflowID != workflowID { return false }
        if let createdAfter, execution.createdAt < createdAfter { return false }
        if let createdBefore, execution.createdAt > createdBefore { return false }
        if let isTest {
            // A provider without the notion has only non-test executions (docs/api.md, GET /executions).
            if (execution.isTest ?? false) != isTest { return false }
        }
        if !searchTerms.isEmpty {
            let matched = searchTerms.contains { term in
                let needle = term.lowercased()
                func found(in haystack: String) -> Bool { haystack.lowercased().contains(needle) }
                return found(in: execution.providerExecutionID) || found(in: execution.id) || execution.searchableValues.contains(where: found)
            }
            if !matched { return false }
        }
        return true
    }

    /// True when no record can match, so the provider need not be called at all.
    public var isUnsatisfiable: Bool {
        if let statuses, statuses.isEmpty { return true }
        if let createdAfter, let createdBefore, createdAfter > createdBefore { return true }
        return false
    }
}

/// What a filter reads of an execution: the unified execution offers it, and so does an index's
/// compact record, so both are filtered by the one `ExecutionFilter.matches`.
public protocol FilterableExecution {
    var status: ExecutionStatus? { get }
    var workflowID: String? { get }
    var createdAt: Timestamp { get }
    /// nil when the provider has no such notion.
    var isTest: Bool? { get }
    var providerExecutionID: String { get }
    /// `<provider name>:<provider's id>`.
    var id: String { get }
    /// Parameter values the `q` filter searches besides the id.
    var searchableValues: [String] { get }
}

extension UnifiedExecution: FilterableExecution {
    public var workflowID: String? { workflow?.id }
}
