public import GatewayHTTP

/// The identity of a request across the gateway and its upstream calls.
public struct RequestTrace: Sendable, Equatable {
    /// The client's `X-Request-Id` when it was a reasonable token, else a new one.
    public var requestID: String
    /// W3C trace id (32 lowercase hex): the caller's when it sent a valid `traceparent`.
    public var traceID: String
    /// The span id this gateway uses as parent for its upstream calls (16 lowercase hex).
    public var spanID: String
    public var sampled: Bool

    /// The `traceparent` to send upstream.
    public var traceparent: String { "00-\(traceID)-\(spanID)-\(sampled ? "01" : "00")" }
}

public enum RequestTraceKey: RequestContextKey {
    public typealias Value = RequestTrace
}

/// Assigns every request an id and a trace context, and echoes `X-Request-Id` on the response.
public struct RequestTraceMiddleware: HTTPMiddleware {
    public init() {}

    public func handle(_ request: HTTPRequest, context: RequestContext, next: any HTTPResponder) async -> HTTPResponse {
        var context = context
        let trace = Self.assign(request, context: &context)
        var response = await next.respond(to: request, context: context)
        response.headers.replaceOrAdd(name: "X-Request-Id", value: trace.requestID)
        return response
    }

    public func handleImmediately(_ request: HTTPRequest, context: inout RequestContext, next: any HTTPResponder) -> HTTPResponse? {
        let trace = Self.assign(request, context: &context)
        guard var response = next.respondImmediately(to: request, context: &context) else { return nil }
        response.headers.replaceOrAdd(name: "X-Request-Id", value: trace.requestID)
        return response
    }

    /// The trace an earlier attempt at this request chose, else a new one.
    private static func assign(_ request: HTTPRequest, context: inout RequestContext) -> RequestTrace {
        if let chosen = context[RequestTraceKey.self] { return chosen }
        let trace = trace(for: request)
        context[RequestTraceKey.self] = trace
        return trace
    }

    static func trace(for request: HTTPRequest) -> RequestTrace {
        let requestID = request.headers["X-Request-Id"].flatMap(Self.acceptableRequestID) ?? RandomIdentifier.hex(byteCount: 16)
        let spanID = RandomIdentifier.hex(byteCount: 8)
        if let parent = request.headers["traceparent"].flatMap(Self.parseTraceparent) {
            return RequestTrace(requestID: requestID, traceID: parent.traceID, spanID: spanID, sampled: parent.sampled)
        }
        return RequestTrace(requestID: requestID, traceID: RandomIdentifier.hex(byteCount: 16), spanID: spanID, sampled: false)
    }

    /// 1–128 characters of `[A-Za-z0-9._:-]`: safe to log, to echo and to send upstream.
    static func acceptableRequestID(_ value: String) -> String? {
        guard (1...128).contains(value.utf8.count) else { return nil }
        let acceptable = value.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"),
                 UInt8(ascii: ":"), UInt8(ascii: "-"):
                true
            default:
                false
            }
        }
        return acceptable ? value : nil
    }

    /// Version 00 only; all-zero ids are invalid (W3C Trace Context §3.2).
    static func parseTraceparent(_ value: String) -> (traceID: String, sampled: Bool)? {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0] == "00", parts[1].utf8.count == 32, parts[2].utf8.count == 16,
              parts[3].utf8.count == 2,
              parts[1...3].allSatisfy({ $0.utf8.allSatisfy(isLowerHex) }),
              parts[1].contains(where: { $0 != "0" }), parts[2].contains(where: { $0 != "0" }),
              let flags = UInt8(parts[3], radix: 16)
        else { return nil }
        return (String(parts[1]), flags & 1 == 1)
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains(byte)
    }
}
