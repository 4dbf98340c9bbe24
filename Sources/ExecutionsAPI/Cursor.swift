import GatewayCrypto
import GatewayJSON
import GatewayProviders

/// Where each provider stands in a walk, as recorded in a cursor.
struct ProviderCursorState: Sendable, Equatable {
    /// nil: nothing shown from this provider yet.
    var position: ProviderPosition?
    /// The provider has nothing more to show for this walk.
    var exhausted: Bool
}

/// The decoded content of a `nextCursor`: the query it continues and every provider's position.
struct CursorPayload: Sendable, Equatable {
    static let version: Int64 = 1

    var query: ListQuery
    /// The providers the walk covers, resolved when it began, with their states.
    var providers: [(name: String, state: ProviderCursorState)]

    static func == (lhs: CursorPayload, rhs: CursorPayload) -> Bool {
        lhs.query == rhs.query && lhs.providers.count == rhs.providers.count
            && zip(lhs.providers, rhs.providers).allSatisfy { $0.name == $1.name && $0.state == $1.state }
    }
}

/// Seals and opens cursors: `base64url(JSON payload) "." base64url(HMAC-SHA256(secret, "egc1." + payload))`.
///
/// The payload is readable but tamper-evident; the signature binds the query and positions, so a
/// modified, truncated or foreign (other secret) cursor fails verification. Access is not bound:
/// every page is authorised afresh against the current client.
struct CursorCodec: Sendable {
    private let key: [UInt8]
    private static let domain = Array("egc1.".utf8)

    init(secret: String) {
        key = Array(secret.utf8)
    }

    /// The longest cursor the gateway hands out. The longest query the document allows (10 search
    /// terms of 100 characters, a 256-character workflow id, every JSON escape at its longest) makes
    /// a cursor of under 12 KiB with three providers; the cursor and every other parameter at its
    /// maximum, percent-encoded, fit the server's 32 KiB request-target limit.
    static let maximumIssuedLength = 12_288

    /// A 400 naming the parameters that make a walk's cursor too long to send back, found before
    /// any upstream call by sealing a worst case: every provider positioned on a long id.
    func problemIfTooLargeToPage(_ query: ListQuery, providers: [String]) -> Problem? {
        let worstPosition = ProviderPosition(
            last: ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: .min), id: String(repeating: "x", count: 160)),
            offsetHint: .max
        )
        let worstCase = CursorPayload(
            query: query,
            providers: providers.map { ($0, ProviderCursorState(position: worstPosition, exhausted: false)) }
        )
        guard seal(worstCase).utf8.count > Self.maximumIssuedLength else { return nil }
        var named: [Problem.InvalidParameter] = []
        if !query.filter.searchTerms.isEmpty {
            named.append(.init(name: "q", reason: "too many or too long search terms to page through; use fewer or shorter terms"))
        }
        if let workflow = query.filter.workflowID, workflow.utf8.count > 64 {
            named.append(.init(name: "workflowId", reason: "too long to page through"))
        }
        if named.isEmpty { named.append(.init(name: "provider", reason: "the query is too large to page through")) }
        return .invalidParameters(named)
    }

    func seal(_ payload: CursorPayload) -> String {
        let body = Base64URL.encode(encode(payload).serialized())
        return body + "." + Base64URL.encode(signature(of: body))
    }

    func open(_ token: String) -> Result<CursorPayload, Problem> {
        let invalid = Problem(
            .invalidCursor, status: .badRequest, title: "Invalid cursor",
            detail: "The cursor is not one this gateway issued, or it was modified or truncated. Start again without a cursor.",
            invalidParams: [.init(name: "cursor", reason: "is not a valid cursor")]
        )
        // Longer than any cursor this gateway issues: refused before the MAC is computed over it.
        guard token.utf8.count <= Self.maximumIssuedLength else { return .failure(invalid) }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2,
              let presented = Base64URL.decode(String(parts[1])),
              constantTimeEquals(presented, signature(of: String(parts[0]))),
              let json = Base64URL.decode(String(parts[0])),
              let document = try? JSONParser.parse(json),
              let payload = decode(document)
        else { return .failure(invalid) }
        return .success(payload)
    }

    private func signature(of body: String) -> [UInt8] {
        HMACSHA256.authenticationCode(key: key, message: Self.domain + Array(body.utf8))
    }

    // MARK: - JSON form (short keys: cursors travel in URLs)

    private func encode(_ payload: CursorPayload) -> JSONValue {
        let query = payload.query
        var q: JSONObject = ["l": .integer(Int64(query.limit)), "a": .bool(query.allowPartial)]
        if let providers = query.providers { q["p"] = .array(providers.map { .string($0) }) }
        if let statuses = query.filter.statuses { q["s"] = .array(statuses.map(\.rawValue).sorted().map { .string($0) }) }
        if let workflow = query.filter.workflowID { q["w"] = .string(workflow) }
        if let after = query.filter.createdAfter { q["ca"] = .integer(after.nanosecondsSinceEpoch) }
        if let before = query.filter.createdBefore { q["cb"] = .integer(before.nanosecondsSinceEpoch) }
        if !query.filter.searchTerms.isEmpty { q["q"] = .array(query.filter.searchTerms.map { .string($0) }) }
        if let isTest = query.filter.isTest { q["t"] = .bool(isTest) }
        if !query.include.isEmpty { q["i"] = .array(query.include.map(\.rawValue).sorted().map { .string($0) }) }
        var states = JSONObject()
        for (name, state) in payload.providers {
            var entry: JSONObject = [:]
            if state.exhausted { entry["x"] = .bool(true) }
            if let position = state.position {
                entry["c"] = .integer(position.last.createdAt.nanosecondsSinceEpoch)
                entry["i"] = .string(position.last.id)
                if let offset = position.offsetHint { entry["o"] = .integer(Int64(offset)) }
            }
            states[name] = .object(entry)
        }
        return ["v": .integer(CursorPayload.version), "q": .object(q), "p": .object(states)]
    }

    private func decode(_ document: JSONValue) -> CursorPayload? {
        guard document["v"]?.integerValue == CursorPayload.version,
              let q = document["q"]?.objectValue, let states = document["p"]?.objectValue,
              let limit = q["l"]?.integerValue, (1...Int64(ListQuery.maximumLimit)).contains(limit),
              let allowPartial = q["a"]?.boolValue
        else { return nil }
        var query = ListQuery(limit: Int(limit), allowPartial: allowPartial)
        if let providers = q["p"] {
            guard let names = strings(providers) else { return nil }
            query.providers = names
        }
        if let statuses = q["s"] {
            guard let names = strings(statuses) else { return nil }
            let parsed = names.compactMap(ExecutionStatus.init(rawValue:))
            guard parsed.count == names.count else { return nil }
            query.filter.statuses = Set(parsed)
        }
        if let workflow = q["w"] {
            guard let id = workflow.stringValue else { return nil }
            query.filter.workflowID = id
        }
        if let after = q["ca"] {
            guard let nanoseconds = after.integerValue else { return nil }
            query.filter.createdAfter = Timestamp(nanosecondsSinceEpoch: nanoseconds)
        }
        if let before = q["cb"] {
            guard let nanoseconds = before.integerValue else { return nil }
            query.filter.createdBefore = Timestamp(nanosecondsSinceEpoch: nanoseconds)
        }
        if let terms = q["q"] {
            guard let values = strings(terms) else { return nil }
            query.filter.searchTerms = values
        }
        if let isTest = q["t"] {
            guard let flag = isTest.boolValue else { return nil }
            query.filter.isTest = flag
        }
        if let include = q["i"] {
            guard let names = strings(include) else { return nil }
            let fields = names.compactMap(IncludeField.init(rawValue:))
            guard fields.count == names.count else { return nil }
            query.include = Set(fields)
        }
        var providers: [(name: String, state: ProviderCursorState)] = []
        for (name, value) in states {
            guard let entry = value.objectValue else { return nil }
            var state = ProviderCursorState(position: nil, exhausted: entry["x"]?.boolValue ?? false)
            if let created = entry["c"] {
                guard let nanoseconds = created.integerValue, let id = entry["i"]?.stringValue else { return nil }
                let offset = entry["o"]?.integerValue.map { Int($0) }
                state.position = ProviderPosition(
                    last: ExecutionSortKey(createdAt: Timestamp(nanosecondsSinceEpoch: nanoseconds), id: id),
                    offsetHint: offset
                )
            }
            providers.append((name, state))
        }
        guard !providers.isEmpty else { return nil }
        return CursorPayload(query: query, providers: providers)
    }

    private func strings(_ value: JSONValue) -> [String]? {
        guard let array = value.arrayValue else { return nil }
        let strings = array.compactMap(\.stringValue)
        return strings.count == array.count ? strings : nil
    }
}
