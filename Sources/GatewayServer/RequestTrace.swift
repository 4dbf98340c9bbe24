import GatewayEventLoop
public import GatewayHTTP

/// The identity of a request across the gateway and its upstream calls.
public struct RequestTrace: Sendable, Equatable {
    /// The client's `X-Request-Id` when it was a reasonable token, else a new one.
    public var requestID: String
    /// The `traceparent` to send upstream, `00-<trace id>-<span id>-<flags>`: built once, when the
    /// request arrives (every upstream call and every answer's facts carry it).
    public let traceparent: String

    /// - Parameters:
    ///   - traceID: 32 lowercase hex digits; `spanID` 16.
    public init(requestID: String, traceID: String, spanID: String, sampled: Bool) {
        self.requestID = requestID
        traceparent = "00-\(traceID)-\(spanID)-\(sampled ? "01" : "00")"
    }

    private init(requestID: String, traceparent: String) {
        self.requestID = requestID
        self.traceparent = traceparent
    }

    /// W3C trace id (32 lowercase hex): the caller's when it sent a valid `traceparent`.
    public var traceID: String { String(traceparent.utf8.dropFirst(3).prefix(32)) ?? "" }
    /// The span id this gateway uses as parent for its upstream calls (16 lowercase hex).
    public var spanID: String { String(traceparent.utf8.dropFirst(36).prefix(16)) ?? "" }
    public var sampled: Bool { traceparent.hasSuffix("-01") }

    /// A new trace: a new span in the caller's trace (`parent`, from its `traceparent`) or in a
    /// new one, for a request with id `requestID` or a new one. The ids are written straight into
    /// the two strings.
    static func new(requestID: String?, parent: (traceID: String, sampled: Bool)?) -> RequestTrace {
        let id = requestID ?? RandomIdentifier.hex(byteCount: 16)
        let traceparent = String(unsafeUninitializedCapacity: 55) { output in
            func put(_ text: StaticString, at offset: Int) {
                text.withUTF8Buffer { bytes in
                    for (index, byte) in bytes.enumerated() { output[offset + index] = byte }
                }
            }
            put("00-", at: 0)
            if var traceID = parent?.traceID {
                traceID.withUTF8 { bytes in
                    for (index, byte) in bytes.prefix(32).enumerated() { output[3 + index] = byte }
                }
            } else {
                RandomIdentifier.writeHex(byteCount: 16, into: UnsafeMutableBufferPointer(rebasing: output[3..<35]))
            }
            put("-", at: 35)
            RandomIdentifier.writeHex(byteCount: 8, into: UnsafeMutableBufferPointer(rebasing: output[36..<52]))
            put(parent?.sampled == true ? "-01" : "-00", at: 52)
            return 55
        }
        return RequestTrace(requestID: id, traceparent: traceparent)
    }
}

public enum RequestTraceKey: RequestContextKey {
    public typealias Value = RequestTrace
}

/// Assigns every request an id and a trace context, and echoes `X-Request-Id` on the response.
public struct RequestTraceMiddleware: HTTPMiddleware {
    @inlinable public init() {}

    @usableFromInline static let requestIDField = HTTPFieldName("X-Request-Id")

    // Inlinable so that a chain built in another module specializes it and the layers behind it.
    @inlinable
    public nonisolated(nonsending) func handle<Next: HTTPResponder>(_ request: HTTPRequest, context: consuming RequestContext, next: Next) async -> HTTPResponse {
        let trace = Self.trace(for: request)
        context[RequestTraceKey.self] = trace
        var response = await next.respond(to: request, context: consume context)
        response.headers.replaceOrAdd(Self.requestIDField, value: trace.requestID)
        return response
    }

    @usableFromInline
    static func trace(for request: HTTPRequest) -> RequestTrace {
        // One pass over the fields: almost no request carries either.
        // The first field of each name decides, as a header lookup would.
        var givenRequestID: String?
        var givenTraceparent: String?
        for field in request.headers {
            if field.hasCanonicalName("x-request-id") {
                if givenRequestID == nil { givenRequestID = field.value }
            } else if field.hasCanonicalName("traceparent") {
                if givenTraceparent == nil { givenTraceparent = field.value }
            }
        }
        let requestID = givenRequestID.flatMap(Self.acceptableRequestID)
        let parent = givenTraceparent.flatMap(Self.parseTraceparent)
        return RequestTrace.new(requestID: requestID, parent: parent)
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
