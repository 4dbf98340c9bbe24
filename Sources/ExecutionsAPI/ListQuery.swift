import GatewayEventLoop
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
    static let maximumSearchTerms = 10
    static let maximumSearchTermLength = 100

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
struct ParsedListParameters: Sendable {
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
    /// - Parameter usableProviders: what an unknown provider name is answered with: only the
    ///   providers this client may use, so a client never learns of the others.
    static func parse(
        _ items: [(name: String, value: String)], knownProviders: Set<String>, usableProviders: [String]
    ) -> Result<ParsedListParameters, Problem> {
        var problems: [Problem.InvalidParameter] = []
        var query = ListQuery()
        var given = Set<String>()
        var cursor: String?
        var searchTerms: [String] = []
        // Every `q` given counts toward the bound, repeats included, as the document's `maxItems` does.
        var searchTermsGiven = 0
        var createdAfter: CreationBound?
        var createdBefore: CreationBound?

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
                    problems.append(.init(name: name, reason: "unknown provider \(unknown.map { "'\($0)'" }.joined(separator: ", ")); this client may use: \(usableProviders.isEmpty ? "none" : usableProviders.sorted().joined(separator: ", "))"))
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
                if let bound = CreationBound(rfc3339: value) {
                    if name == "createdAfter" { createdAfter = bound } else { createdBefore = bound }
                } else {
                    problems.append(.init(name: name, reason: "must be an RFC 3339 date-time such as 2026-11-20T10:00:00Z"))
                }
            case "q":
                searchTermsGiven += 1
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
        if searchTermsGiven > ListQuery.maximumSearchTerms {
            problems.append(.init(name: "q", reason: "may be repeated at most \(ListQuery.maximumSearchTerms) times"))
        }
        query.filter.searchTerms = searchTerms
        // `createdAfter` later than `createdBefore` is a well-formed range that holds no instant: an
        // empty answer, like any other filter nothing meets (and no upstream call).
        (query.filter.createdAfter, query.filter.createdBefore) = CreationBound.filterBounds(after: createdAfter, before: createdBefore)
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

/// A `createdAfter` or `createdBefore` value: any RFC 3339 date-time, years 0000 to 9999.
///
/// `Timestamp` holds only instants it can render, from 1677-09-21T00:12:45Z to 2262-04-11T23:47:15Z
/// (nanoseconds in an `Int64`), so no execution lies outside that window. A bound outside it is
/// therefore no bound at all (an earlier `createdAfter`, a later `createdBefore`) or one no
/// execution can meet (a later `createdAfter`, an earlier `createdBefore`): then the filter is made
/// unsatisfiable, so no provider is called with a date it may not take. Comparing two bounds uses
/// the exact instants.
struct CreationBound: Comparable {
    /// Seconds since the epoch (floored) and the fraction of the second, exact for every year.
    let seconds: Int64
    let nanoseconds: Int64

    static let earliest = Timestamp(nanosecondsSinceEpoch: -9_223_372_035_000_000_000)
    static let latest = Timestamp(nanosecondsSinceEpoch: 9_223_372_035_999_999_999)

    init?(rfc3339 text: String) {
        let bytes = Array(text.utf8)
        guard bytes.count > 4, bytes[0..<4].allSatisfy({ (48...57).contains($0) }) else { return nil }
        let year = bytes[0..<4].reduce(0) { $0 * 10 + Int($1 - 48) }
        // The same date in a year of the same kind (leap or not) inside Timestamp's range checks the
        // syntax and the date; the years between the two shift the instant by whole days.
        let standInYear = CivilCalendar.isLeapYear(Int64(year)) ? 2000 : 2001
        guard let shifted = Timestamp(rfc3339: String(standInYear) + String(decoding: bytes[4...], as: UTF8.self)) else {
            return nil
        }
        let shiftedSeconds = CivilCalendar.floorDivide(shifted.nanosecondsSinceEpoch, 1_000_000_000)
        let days = CivilCalendar.days(year: Int64(year), month: 1, day: 1) - CivilCalendar.days(year: Int64(standInYear), month: 1, day: 1)
        seconds = shiftedSeconds + days * 86_400
        nanoseconds = shifted.nanosecondsSinceEpoch - shiftedSeconds * 1_000_000_000
    }

    static func < (lhs: CreationBound, rhs: CreationBound) -> Bool {
        (lhs.seconds, lhs.nanoseconds) < (rhs.seconds, rhs.nanoseconds)
    }

    private enum Placement { case before, within(Timestamp), after }

    private var placement: Placement {
        if seconds < CivilCalendar.floorDivide(Self.earliest.nanosecondsSinceEpoch, 1_000_000_000) { return .before }
        if seconds > CivilCalendar.floorDivide(Self.latest.nanosecondsSinceEpoch, 1_000_000_000) { return .after }
        return .within(Timestamp(nanosecondsSinceEpoch: seconds * 1_000_000_000 + nanoseconds))
    }

    /// The filter's `createdAfter` and `createdBefore` for these bounds (as given, ordered or not).
    static func filterBounds(after: CreationBound?, before: CreationBound?) -> (after: Timestamp?, before: Timestamp?) {
        let unsatisfiable = (after: Optional(latest), before: Optional(earliest))
        var lower: Timestamp?
        var upper: Timestamp?
        switch after?.placement {
        case nil, .before: lower = nil
        case .within(let timestamp): lower = timestamp
        case .after: return unsatisfiable
        }
        switch before?.placement {
        case nil, .after: upper = nil
        case .within(let timestamp): upper = timestamp
        case .before: return unsatisfiable
        }
        return (lower, upper)
    }
}
