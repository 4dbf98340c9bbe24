import CHiredis

/// One RESP2 reply, copied out of hiredis's reply tree (hiredis frees its own after the callback).
public enum RedisReply: Sendable, Equatable {
    /// A simple string (`+OK`).
    case status(String)
    /// An error reply (`-ERR ...`, `-NOSCRIPT ...`): Redis's answer, not a failure of the client,
    /// so it is a value; inside an array (EXEC, a script's table) it may sit beside other replies.
    case error(String)
    case integer(Int64)
    /// A bulk string, byte for byte (binary safe).
    case bulk([UInt8])
    case array([RedisReply])
    /// The null bulk string or null array.
    case null

    /// The bulk string as UTF-8 text (lossy), or a status's text; nil for other replies.
    public var text: String? {
        switch self {
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    public var errorMessage: String? {
        if case .error(let message) = self { message } else { nil }
    }

    /// Copies `reply` and everything below it. hiredis bounds the nesting (7 levels), so the
    /// recursion is bounded too.
    init(copying reply: UnsafePointer<redisReply>) {
        let reply = reply.pointee
        switch reply.type {
        case REDIS_REPLY_STATUS:
            self = .status(Self.text(reply))
        case REDIS_REPLY_ERROR:
            self = .error(Self.text(reply))
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(reply.integer))
        case REDIS_REPLY_STRING:
            self = .bulk(Self.bytes(reply))
        case REDIS_REPLY_ARRAY:
            var elements: [RedisReply] = []
            elements.reserveCapacity(reply.elements)
            if let element = reply.element {
                for index in 0..<reply.elements {
                    if let child = element[index] { elements.append(RedisReply(copying: child)) } else { elements.append(.null) }
                }
            }
            self = .array(elements)
        default:
            self = .null
        }
    }

    private static func bytes(_ reply: redisReply) -> [UInt8] {
        guard let pointer = reply.str, reply.len > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: reply.len))
    }

    private static func text(_ reply: redisReply) -> String {
        String(decoding: bytes(reply), as: UTF8.self)
    }
}
