import GatewayHTTP
public import GatewayProviders

/// Fields `include=` may name.
public enum IncludeField: String, Sendable, CaseIterable, Hashable {
    case downloads, startBlock, events, detail, raw
}

/// A validated `GET /executions` query, everything but the cursor.
public struct ListQuery: Sendable, Equatable {
    public var limit: Int
    /// Provider names asked for; nil means every provider the client may use.
    public var providers: [String]?
    public var filter: ExecutionFilter
    public var include: Set<IncludeField>
    public var allowPartial: Bool

    public static let defaultLimit = 20
    public static let maximumLimit = 100
    static let maximumSearchTerms = 20
    static let maximumSearchTermLength = 256

    public init(
        limit: Int = ListQuery.defaultLimit,
        providers: [String]? = nil,
        filter: ExecutionFilter = ExecutionFilter(),
        include: Set<IncludeField> = [],
        allowPartial: Bool = true
    ) {
        self.limit = limit
        self.providers = providers
        self.filter = filter
        self.include = include
        self.allowPartial = allowPartial
    }
}

/// Parameters as they arrived, before validation: which ones were given, and the cursor.
struct ParsedListParameters {
    var query: ListQuery
    /// Names of the parameters the client actually sent (to compare with a cursor's query).
    var given: Set<String>
    var cursor: String?
}

enum ListParameterParser {
    static let known: Set<String> = [
        "limit", "cursor", "provider", "status", "workflowId", "createdAfter", "createdBefore", "q", "isTest",
        "include", "allowPartial",
    ]

    /// Validates every parameter and reports every problem at once, naming each parameter.
    static func parse(_ items: [(name: String, value: String)], knownProviders: Set<String>) -> Result<ParsedListParameters, Problem> {
        var problems: [Problem.InvalidParameter] = []
        var query = ListQuery()
        var given = Set<String>()
        var cursor: String?
        var searchTerms: [String] = []

        for item in items where !known.contains(item.name) {
            problems.append(.init(name: item.name, reason: "is not a parameter of this endpoint"))
        }
        var seen = Set<String>()
        for item in items where known.contains(item.name) && item.name != "q" {
            if !seen.insert(item.name).inserted {
                problems.append(.init(name: item.name, reason: "may be given only once"))
            }
        }

        for (name, value) in items where known.contains(name) {
            given.insert(name)
            switch name {
            case "limit":
                if let limit = Int(value), (1...ListQuery.maximumLimit).contains(limit), value.utf8.allSatisfy({ (48...57).contains($0) }) {
                    query.limit = limit
                } else {
                    problems.append(.init(name: name, reason: "must be an integer from 1 to \(ListQuery.maximumLimit)"))
                }
            case "cursor":
                if value.isEmpty {
                    problems.append(.init(name: name, reason: "must not be empty"))
                } else {
                    cursor = value
                }
            case "provider":
                let names = list(value)
                let unknown = names.filter { !knownProviders.contains($0) }
                if names.isEmpty {
                    problems.append(.init(name: name, reason: "must name at least one provider"))
                } else if !unknown.isEmpty {
                    problems.append(.init(name: name, reason: "unknown provider \(unknown.map { "'\($0)'" }.joined(separator: ", ")); known: \(knownProviders.sorted().joined(separator: ", "))"))
                } else {
                    query.providers = dedupe(names)
                }
            case "status":
                let names = list(value)
                let statuses = names.compactMap(ExecutionStatus.init(rawValue:))
                if names.isEmpty || statuses.count != names.count {
                    let allowed = ExecutionStatus.allCases.map(\.rawValue).joined(separator: ", ")
                    problems.append(.init(name: name, reason: "must be a comma list of: \(allowed)"))
                } else {
                    query.filter.statuses = Set(statuses)
                }
            case "workflowId":
                if value.isEmpty || value.unicodeScalars.count > 256 {
                    problems.append(.init(name: name, reason: "must be a workflow id of 1 to 256 characters"))
                } else {
                    query.filter.workflowID = value
                }
            case "createdAfter", "createdBefore":
                if let timestamp = Timestamp(rfc3339: value) {
                    if name == "createdAfter" { query.filter.createdAfter = timestamp } else { query.filter.createdBefore = timestamp }
                } else {
                    problems.append(.init(name: name, reason: "must be an RFC 3339 date-time such as 2026-11-20T10:00:00Z"))
                }
            case "q":
                if value.isEmpty || value.unicodeScalars.count > ListQuery.maximumSearchTermLength {
                    problems.append(.init(name: name, reason: "must be a search term of 1 to \(ListQuery.maximumSearchTermLength) characters"))
                } else if !searchTerms.contains(value) {
                    searchTerms.append(value)
                }
            case "isTest", "allowPartial":
                switch value {
                case "true": if name == "isTest" { query.filter.isTest = true } else { query.allowPartial = true }
                case "false": if name == "isTest" { query.filter.isTest = false } else { query.allowPartial = false }
                default: problems.append(.init(name: name, reason: "must be true or false"))
                }
            case "include":
                let names = list(value)
                let fields = names.compactMap(IncludeField.init(rawValue:))
                if names.isEmpty || fields.count != names.count {
                    let allowed = IncludeField.allCases.map(\.rawValue).joined(separator: ", ")
                    problems.append(.init(name: name, reason: "must be a comma list of: \(allowed)"))
                } else {
                    query.include = Set(fields)
                }
            default:
                break
            }
        }
        if searchTerms.count > ListQuery.maximumSearchTerms {
            problems.append(.init(name: "q", reason: "may be repeated at most \(ListQuery.maximumSearchTerms) times"))
        }
        query.filter.searchTerms = searchTerms
        if let after = query.filter.createdAfter, let before = query.filter.createdBefore, after > before {
            problems.append(.init(name: "createdAfter", reason: "must not be later than createdBefore"))
        }
        if !problems.isEmpty { return .failure(.invalidParameters(problems)) }
        return .success(ParsedListParameters(query: query, given: given, cursor: cursor))
    }

    private static func list(_ value: String) -> [String] {
        // Empty elements ("a,,b", "a,") are kept so they fail validation instead of vanishing.
        value.split(separator: ",", omittingEmptySubsequences: false).map { String($0.trimmingASCIISpaces()) }
    }

    private static func dedupe(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}

extension Substring {
    func trimmingASCIISpaces() -> Substring {
        var slice = self
        while slice.first == " " { slice = slice.dropFirst() }
        while slice.last == " " { slice = slice.dropLast() }
        return slice
    }
}
