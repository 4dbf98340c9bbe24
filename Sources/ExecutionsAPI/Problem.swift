public import GatewayHTTP
public import GatewayJSON
public import GatewayProviders

/// An RFC 9457 problem: every error the gateway returns has this shape.
public struct Problem: Error, Sendable, Equatable {
    public struct InvalidParameter: Sendable, Equatable {
        public var name: String
        public var reason: String

        public init(name: String, reason: String) {
            self.name = name
            self.reason = reason
        }
    }

    /// The problem types this API defines; each is documented in openapi/gateway.yaml.
    public enum Kind: String, Sendable {
        case invalidParameters = "invalid-parameters"
        case invalidCursor = "invalid-cursor"
        case unauthenticated = "unauthenticated"
        case forbidden = "forbidden"
        case notFound = "not-found"
        case rateLimited = "rate-limited"
        case responseTooLarge = "response-too-large"
        case upstreamError = "upstream-error"
        case upstreamTimeout = "upstream-timeout"
        case upstreamPaused = "upstream-paused"
        case internalError = "internal-error"
    }

    public var kind: Kind
    public var title: String
    public var status: HTTPStatus
    public var detail: String
    public var invalidParams: [InvalidParameter]
    /// The provider a problem concerns, for upstream problems.
    public var provider: String?
    /// Seconds to wait, for `429` and paused providers (also sent as `Retry-After`).
    public var retryAfterSeconds: Int?
    /// For a `429` because the client's upstream-call budget is spent: that budget, which the
    /// response's `RateLimit-*` headers then describe.
    public var callBudgetRefusal: UpstreamCallBudgetRefusal?

    public init(
        _ kind: Kind,
        status: HTTPStatus,
        title: String,
        detail: String,
        invalidParams: [InvalidParameter] = [],
        provider: String? = nil,
        retryAfterSeconds: Int? = nil,
        callBudgetRefusal: UpstreamCallBudgetRefusal? = nil
    ) {
        self.callBudgetRefusal = callBudgetRefusal
        self.kind = kind
        self.status = status
        self.title = title
        self.detail = detail
        self.invalidParams = invalidParams
        self.provider = provider
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var typeURI: String { "https://executions-gateway.dev/problems/\(kind.rawValue)" }

    /// The problem as a JSON object (also embedded in `providers[].error` and `enrichmentError`).
    public func json(requestID: String?) -> JSONValue {
        var object: JSONObject = [
            "type": .string(typeURI),
            "title": .string(title),
            "status": .integer(Int64(status.code)),
            "detail": .string(detail),
        ]
        if let requestID { object["requestId"] = .string(requestID) }
        if let provider { object["provider"] = .string(provider) }
        if let retryAfterSeconds { object["retryAfter"] = .integer(Int64(retryAfterSeconds)) }
        if !invalidParams.isEmpty {
            object["invalidParams"] = .array(invalidParams.map { ["name": .string($0.name), "reason": .string($0.reason)] })
        }
        return .object(object)
    }

    public func response(requestID: String) -> HTTPResponse {
        var headers: HTTPHeaders = ["Content-Type": "application/problem+json", "Cache-Control": "no-store"]
        if let retryAfterSeconds { headers.add(name: "Retry-After", value: String(max(1, retryAfterSeconds))) }
        if let callBudgetRefusal {
            headers.add(name: "RateLimit-Limit", value: String(callBudgetRefusal.limit))
            headers.add(name: "RateLimit-Remaining", value: "0")
            headers.add(name: "RateLimit-Reset", value: String(callBudgetRefusal.resetSeconds))
        }
        return HTTPResponse(status: status, headers: headers, body: json(requestID: requestID).serialized())
    }

    public static func invalidParameters(_ parameters: [InvalidParameter]) -> Problem {
        let names = parameters.map(\.name).joined(separator: ", ")
        return Problem(
            .invalidParameters, status: .badRequest, title: "Invalid request parameters",
            detail: "These parameters are invalid: \(names).", invalidParams: parameters
        )
    }

    /// A list page whose rendering passed the configured byte cap. A `400`: the request is
    /// valid, but the client has to ask for less (fewer items or fewer joined parts) to get an
    /// answer; sending it again unchanged will not help while the data stays as it is.
    public static func responseTooLarge(maxBytes: Int, include: Set<IncludeField>) -> Problem {
        var reduce = [InvalidParameter(name: "limit", reason: "fewer items make a smaller page")]
        if !include.isEmpty {
            let included = include.map(\.rawValue).sorted().joined(separator: ", ")
            reduce.append(.init(name: "include", reason: "each of \(included) adds provider records to every item"))
        }
        return Problem(
            .responseTooLarge, status: .badRequest, title: "Response too large",
            detail: "The page would be larger than the gateway's limit of \(maxBytes) bytes; ask for fewer items (limit) or fewer joined parts (include).",
            invalidParams: reduce
        )
    }

    public static func notFound(_ detail: String) -> Problem {
        Problem(.notFound, status: .notFound, title: "Not found", detail: detail)
    }

    public static func forbidden(_ detail: String) -> Problem {
        Problem(.forbidden, status: .forbidden, title: "Forbidden", detail: detail)
    }
}
