/// Why a Redis call did not produce a reply. A reply that is Redis's own error (`-ERR`) is not one
/// of these: it is `RedisReply.error`.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The `redis://` URL cannot be used; `reason` never contains the password.
    case invalidURL(reason: String)
    /// The command cannot be sent as given (no arguments, more than hiredis accepts).
    case invalidCommand(reason: String)
    /// No reply before the command's deadline. The command may still run; its late reply is
    /// dropped.
    case timeout
    /// The connection answered nothing for `stallTimeout` past a command's deadline and was
    /// dropped (the reason a mode change reports).
    case stalled
    /// Connecting (TCP, `AUTH`, `SELECT`, the connection's own set-up) failed.
    case connectionFailed(reason: String)
    /// Redis refused the credentials (`WRONGPASS`, `NOAUTH`, ...).
    case authenticationFailed(message: String)
    /// The connection ended with the command sent and no reply read.
    case connectionLost(reason: String)
    /// Not connected and not connecting now (backing off, or the breaker is open): refused at once.
    case unavailable(lastFailure: String)
    /// A reply of a shape the caller cannot use (a script helper expected something else).
    case unexpectedReply(String)
    /// The calling task was cancelled; a reply that still comes is dropped.
    case cancelled
    /// The client was shut down.
    case shutdown

    public var description: String {
        switch self {
        case .invalidURL(let reason): "invalid Redis URL: \(reason)"
        case .invalidCommand(let reason): "invalid Redis command: \(reason)"
        case .timeout: "Redis command timed out"
        case .stalled: "Redis stopped answering"
        case .connectionFailed(let reason): "connecting to Redis failed: \(reason)"
        case .authenticationFailed(let message): "Redis refused the credentials: \(message)"
        case .connectionLost(let reason): "Redis connection lost: \(reason)"
        case .unavailable(let lastFailure): "Redis unavailable (last failure: \(lastFailure))"
        case .unexpectedReply(let detail): "unexpected Redis reply: \(detail)"
        case .cancelled: "Redis command cancelled"
        case .shutdown: "Redis client shut down"
        }
    }
}
