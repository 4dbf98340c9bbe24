import GatewayEventLoop
import GatewayHTTP

/// What every upstream request carries for correlation: `X-Request-Id` and a W3C `traceparent`
/// (https://www.w3.org/TR/trace-context/, version 00).
public struct TraceContext: Sendable, Equatable, CustomStringConvertible {
    public let requestId: String
    /// 32 lowercase hex digits, not all zero.
    public let traceId: String
    /// 16 lowercase hex digits, not all zero: the span of the gateway's outbound call.
    public let spanId: String
    public let sampled: Bool

    /// Continues the client's trace when `incomingTraceparent` is valid (same trace id and sampling
    /// flag, new span id). Otherwise starts a trace: its id is the request id when that already is
    /// 32 hex digits (a UUID's dashes are ignored), so logs and traces line up; else random.
    public init(requestId: String, incomingTraceparent: String? = nil) {
        self.requestId = requestId
        self.spanId = RandomIdentifier.hex(byteCount: 8)
        if let incomingTraceparent, let parent = TraceContext.parseTraceparent(incomingTraceparent) {
            traceId = parent.traceId
            sampled = parent.sampled
            return
        }
        sampled = false
        let candidate = String(requestId.filter { $0 != "-" }).lowercased()
        if TraceContext.isHex(candidate, length: 32) {
            traceId = candidate
        } else {
            traceId = RandomIdentifier.hex(byteCount: 16)
        }
    }

    /// Exact ids, for callers that manage spans themselves; nil when an id is not valid hex of
    /// the right length or is all zeros.
    public init?(requestId: String, traceId: String, spanId: String, sampled: Bool) {
        let traceId = traceId.lowercased()
        let spanId = spanId.lowercased()
        guard TraceContext.isHex(traceId, length: 32), TraceContext.isHex(spanId, length: 16) else { return nil }
        self.requestId = requestId
        self.traceId = traceId
        self.spanId = spanId
        self.sampled = sampled
    }

    /// `00-<trace id>-<span id>-<flags>`.
    public var traceparent: String { "00-\(traceId)-\(spanId)-\(sampled ? "01" : "00")" }

    public var description: String { "request \(requestId), traceparent \(traceparent)" }

    /// The parts of a valid version-00 (or later, per the spec's forward-compatibility rule) traceparent.
    public static func parseTraceparent(_ value: String) -> (traceId: String, parentId: String, sampled: Bool)? {
        let parts = value.trimmingSpacesAndTabs().split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count >= 4 else { return nil }
        let version = String(parts[0]), traceId = String(parts[1]), parentId = String(parts[2]), flags = String(parts[3])
        guard isLowerHex(version, length: 2), version != "ff",
            isLowerHex(traceId, length: 32), !isAllZeros(traceId),
            isLowerHex(parentId, length: 16), !isAllZeros(parentId),
            isLowerHex(flags, length: 2), let flagBits = UInt8(flags, radix: 16)
        else { return nil }
        // Version 00 has exactly four fields; later versions may append more.
        if version == "00" && parts.count != 4 { return nil }
        return (traceId, parentId, flagBits & 1 == 1)
    }

    static func isHex(_ value: String, length: Int) -> Bool {
        isLowerHex(value.lowercased(), length: length) && !isAllZeros(value)
    }

    private static func isLowerHex(_ value: String, length: Int) -> Bool {
        value.utf8.count == length
            && value.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    private static func isAllZeros(_ value: String) -> Bool { value.utf8.allSatisfy { $0 == 0x30 } }
}
