import GatewayJSON

/// The provider endpoints a fault or a counter can name.
public enum SimulatedEndpoint: String, Sendable, CaseIterable, Hashable {
    /// Kaizen `POST /executions/list`, Kapso `GET /workflows/{id}/executions`, B3OS `GET /v1/executions`.
    case list
    /// Kaizen `POST /executions/get`, Kapso `GET /workflow_executions/{id}`, B3OS `GET /v1/executions/{id}`.
    case detail
    /// Kapso `GET /workflows`.
    case workflows
    /// Any other path of the provider's API (answered 404).
    case other
}

/// A failure the simulator injects into a provider's answers.
public struct SimulatedFault: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Answer normally after waiting this long.
        case latency(milliseconds: Int)
        /// Answer with this status in the provider's error shape (plus `Retry-After` when given).
        case status(code: Int, retryAfterSeconds: Int?)
        /// 429 in the provider's shape, with `Retry-After` (and Kapso's rate-limit headers).
        case rateLimited(retryAfterSeconds: Int)
        /// Hold the request without answering (until `timeoutFaultMilliseconds` or cancellation).
        case timeout
        /// Reset the connection without answering.
        case resetConnection
        /// Announce the full body, send only this many bytes (default: half), then close.
        case truncateBody(afterBytes: Int?)
        /// A 200 whose body is cut in half, so it does not parse as JSON.
        case malformedJSON
    }

    public var kind: Kind
    /// Only this endpoint; nil for every endpoint of the provider.
    public var endpoint: SimulatedEndpoint?
    /// Only requests presenting this key; nil for all.
    public var credential: String?
    /// Which matching calls fail, counted from 1 since the fault was set; nil for all.
    public var calls: ClosedRange<Int>?
    /// The fraction of (otherwise selected) calls that fail, drawn from the seeded generator.
    public var probability: Double?

    public init(
        _ kind: Kind,
        endpoint: SimulatedEndpoint? = nil,
        credential: String? = nil,
        calls: ClosedRange<Int>? = nil,
        probability: Double? = nil
    ) {
        self.kind = kind
        self.endpoint = endpoint
        self.credential = credential
        self.calls = calls
        self.probability = probability
    }
}

/// Requests a provider's API received since the last reset.
public struct SimulatorCounters: Sendable, Equatable {
    public var total: Int
    public var byEndpoint: [SimulatedEndpoint: Int]
    /// Keyed by the demo key presented, or "unknown" / "missing" (other strings are not echoed).
    public var byCredential: [String: [SimulatedEndpoint: Int]]

    public init(total: Int = 0, byEndpoint: [SimulatedEndpoint: Int] = [:], byCredential: [String: [SimulatedEndpoint: Int]] = [:]) {
        self.total = total
        self.byEndpoint = byEndpoint
        self.byCredential = byCredential
    }

    public func count(_ endpoint: SimulatedEndpoint) -> Int { byEndpoint[endpoint] ?? 0 }

    public func count(_ endpoint: SimulatedEndpoint, credential: String) -> Int { byCredential[credential]?[endpoint] ?? 0 }

    mutating func record(_ endpoint: SimulatedEndpoint, credentialLabel: String) {
        total += 1
        byEndpoint[endpoint, default: 0] += 1
        byCredential[credentialLabel, default: [:]][endpoint, default: 0] += 1
    }

    var json: JSONValue {
        var endpoints = JSONObject()
        for endpoint in SimulatedEndpoint.allCases where byEndpoint[endpoint] != nil {
            endpoints[endpoint.rawValue] = .int(byEndpoint[endpoint] ?? 0)
        }
        var credentials = JSONObject()
        for label in byCredential.keys.sorted() {
            var perEndpoint = JSONObject()
            for endpoint in SimulatedEndpoint.allCases {
                if let count = byCredential[label]?[endpoint] { perEndpoint[endpoint.rawValue] = .int(count) }
            }
            credentials[label] = .object(perEndpoint)
        }
        return .object(["total": .int(total), "endpoints": .object(endpoints), "credentials": .object(credentials)])
    }
}

/// A fault as installed: it remembers how many matching calls it has seen.
struct InstalledFault: Sendable {
    let id: Int
    let fault: SimulatedFault
    var matchingCalls = 0

    var json: JSONValue {
        var object: JSONObject = ["id": .int(id)]
        switch fault.kind {
        case .latency(let milliseconds):
            object["kind"] = .string("latency")
            object["latencyMs"] = .int(milliseconds)
        case .status(let code, let retryAfter):
            object["kind"] = .string("status")
            object["status"] = .int(code)
            object["retryAfterSeconds"] = retryAfter.map(JSONValue.int) ?? .null
        case .rateLimited(let retryAfter):
            object["kind"] = .string("rateLimit")
            object["retryAfterSeconds"] = .int(retryAfter)
        case .timeout: object["kind"] = .string("timeout")
        case .resetConnection: object["kind"] = .string("reset")
        case .truncateBody(let afterBytes):
            object["kind"] = .string("truncate")
            object["afterBytes"] = afterBytes.map(JSONValue.int) ?? .null
        case .malformedJSON: object["kind"] = .string("malformedJSON")
        }
        object["endpoint"] = .optional(fault.endpoint?.rawValue)
        object["credential"] = .optional(fault.credential)
        object["fromCall"] = fault.calls.map { .int($0.lowerBound) } ?? .null
        object["toCall"] = fault.calls.map { .int($0.upperBound) } ?? .null
        object["probability"] = fault.probability.map(JSONValue.double) ?? .null
        object["matchingCalls"] = .int(matchingCalls)
        return .object(object)
    }
}

/// Why a control request or call was refused.
public struct SimulatorControlError: Error, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

extension SimulatedFault {
    /// Reads one fault from the control API's JSON:
    /// `{"kind": "status", "status": 503, "endpoint": "detail", "fromCall": 2, "toCall": 2}`.
    static func parse(_ value: JSONValue) throws(SimulatorControlError) -> SimulatedFault {
        guard let object = value.objectValue else { throw SimulatorControlError("a fault must be a JSON object") }
        let known: Set<String> = [
            "kind", "endpoint", "credential", "fromCall", "toCall", "count", "probability",
            "latencyMs", "status", "retryAfterSeconds", "afterBytes",
        ]
        if let unknown = object.keys.first(where: { !known.contains($0) }) {
            throw SimulatorControlError("unknown fault field '\(unknown)'")
        }
        func integer(_ key: String) throws(SimulatorControlError) -> Int? {
            guard let value = object[key], !value.isNull else { return nil }
            guard case .integer(let number) = value, let result = Int(exactly: number) else {
                throw SimulatorControlError("'\(key)' must be an integer")
            }
            return result
        }
        guard let kindName = object["kind"]?.stringValue else {
            throw SimulatorControlError("'kind' is required: latency, status, rateLimit, timeout, reset, truncate or malformedJSON")
        }
        let kind: Kind
        switch kindName {
        case "latency":
            guard let milliseconds = try integer("latencyMs"), (0...3_600_000).contains(milliseconds) else {
                throw SimulatorControlError("a latency fault needs 'latencyMs' between 0 and 3600000")
            }
            kind = .latency(milliseconds: milliseconds)
        case "status":
            guard let code = try integer("status"), (100...599).contains(code) else {
                throw SimulatorControlError("a status fault needs 'status' between 100 and 599")
            }
            let retryAfter = try integer("retryAfterSeconds")
            if let retryAfter, retryAfter < 0 { throw SimulatorControlError("'retryAfterSeconds' must be >= 0") }
            kind = .status(code: code, retryAfterSeconds: retryAfter)
        case "rateLimit":
            let retryAfter = try integer("retryAfterSeconds") ?? 60
            guard retryAfter >= 0 else { throw SimulatorControlError("'retryAfterSeconds' must be >= 0") }
            kind = .rateLimited(retryAfterSeconds: retryAfter)
        case "timeout": kind = .timeout
        case "reset": kind = .resetConnection
        case "truncate":
            let afterBytes = try integer("afterBytes")
            if let afterBytes, afterBytes < 0 { throw SimulatorControlError("'afterBytes' must be >= 0") }
            kind = .truncateBody(afterBytes: afterBytes)
        case "malformedJSON": kind = .malformedJSON
        default:
            throw SimulatorControlError("unknown fault kind '\(kindName)'")
        }
        var endpoint: SimulatedEndpoint?
        if let text = try object.optionalString("endpoint"), text != "any" {
            guard let parsed = SimulatedEndpoint(rawValue: text) else {
                throw SimulatorControlError("unknown endpoint '\(text)': list, detail, workflows, other or any")
            }
            endpoint = parsed
        }
        let credential = try object.optionalString("credential")
        let fromCall = try integer("fromCall")
        let toCall = try integer("toCall")
        let count = try integer("count")
        var calls: ClosedRange<Int>?
        if fromCall != nil || toCall != nil || count != nil {
            let lower = fromCall ?? 1
            guard lower >= 1 else { throw SimulatorControlError("'fromCall' must be >= 1") }
            let upper: Int
            if let toCall {
                upper = toCall
            } else if let count {
                guard count >= 1 else { throw SimulatorControlError("'count' must be >= 1") }
                let (sum, overflow) = lower.addingReportingOverflow(count - 1)
                upper = overflow ? Int.max : sum
            } else {
                upper = Int.max
            }
            guard upper >= lower else { throw SimulatorControlError("'toCall' must be >= 'fromCall'") }
            calls = lower...upper
        }
        var probability: Double?
        if let value = object["probability"], !value.isNull {
            switch value {
            case .double(let number): probability = number
            case .integer(let number): probability = Double(number)
            default: throw SimulatorControlError("'probability' must be a number")
            }
            guard let probability, probability >= 0, probability <= 1 else {
                throw SimulatorControlError("'probability' must be between 0 and 1")
            }
        }
        return SimulatedFault(kind, endpoint: endpoint, credential: credential, calls: calls, probability: probability)
    }
}
