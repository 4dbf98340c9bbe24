public import GatewayEventLoop

/// What a `RedisInvalidationListener` reports.
public enum RedisInvalidation: Sendable, Equatable {
    /// These keys changed (written, deleted, expired or evicted) in Redis.
    case keys([[UInt8]])
    /// Every key may have changed (`FLUSHALL`, `FLUSHDB`): drop everything that came from Redis.
    case everything
    /// The listener's connection was lost, so invalidations may have been missed: drop everything
    /// that came from Redis, and trust new entries only once `mode` is `.connected` again.
    case connectionLost
}

/// Client-side caching invalidations on a connection of their own (RESP2): the connection turns
/// tracking on for itself in broadcasting mode (`CLIENT TRACKING on REDIRECT <own id> BCAST PREFIX
/// ...`) and subscribes to `__redis__:invalidate`, so every write to a key under one of the
/// prefixes, by any client, arrives here as `.keys`. Reconnects by itself like `RedisClient`;
/// each loss is reported as `.connectionLost` (and through `onModeChange`).
///
/// `handler` runs on the loop thread, in the order Redis sent the messages; keep it short.
public final class RedisInvalidationListener: Sendable {
    public static let channel = "__redis__:invalidate"

    private let client: RedisClient

    public init(
        configuration: RedisClientConfiguration,
        prefixes: [[UInt8]],
        loop: EventLoop,
        handler: @escaping @Sendable (RedisInvalidation) -> Void
    ) {
        let subscribe = RedisClient.SetupStep(
            command: { _ in [Array("SUBSCRIBE".utf8), Array(Self.channel.utf8)] },
            check: { reply in
                guard case .array(let parts) = reply, parts.first?.text == "subscribe" else {
                    return .unexpectedReply("SUBSCRIBE answered \(reply)")
                }
                return nil
            },
            onMessage: { message in
                if let invalidation = Self.invalidation(from: message) { handler(invalidation) }
            })
        let steps = [
            RedisClient.SetupStep(command: { _ in [Array("CLIENT".utf8), Array("ID".utf8)] }, check: { reply in
                if case .integer = reply { return nil }
                return .unexpectedReply("CLIENT ID answered \(reply)")
            }),
            RedisClient.SetupStep(
                command: { previous in
                    var ownID: Int64 = 0
                    if case .integer(let id) = previous { ownID = id }
                    var arguments = ["CLIENT", "TRACKING", "on", "REDIRECT", String(ownID), "BCAST"].map { Array($0.utf8) }
                    for prefix in prefixes { arguments += [Array("PREFIX".utf8), prefix] }
                    return arguments
                },
                check: { reply in
                    reply.errorMessage.map { .connectionFailed(reason: "CLIENT TRACKING: \($0)") }
                }),
            subscribe,
        ]
        client = RedisClient(
            configuration: configuration, loop: loop, random: { UInt64.random(in: 0...$0) }, extraSetup: steps)
        client.onModeChange { mode, _ in
            if mode == .disconnected { handler(.connectionLost) }
        }
    }

    /// `.connected` once tracking is on and the subscription confirmed.
    public var mode: RedisMode { client.mode }

    public func onModeChange(_ observer: @escaping @Sendable (RedisMode, RedisError?) -> Void) {
        client.onModeChange(observer)
    }

    public func shutdown() async {
        await client.shutdown()
    }

    /// `["message", "__redis__:invalidate", [key, ...] or null]`.
    static func invalidation(from message: RedisReply) -> RedisInvalidation? {
        guard case .array(let parts) = message, parts.count == 3, parts[0].text == "message" else { return nil }
        switch parts[2] {
        case .null:
            return .everything
        case .array(let keys):
            return .keys(keys.compactMap { if case .bulk(let key) = $0 { key } else { nil } })
        case .bulk(let key):
            return .keys([key])
        default:
            return nil
        }
    }
}
