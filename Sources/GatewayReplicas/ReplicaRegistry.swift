import GatewayEventLoop
public import GatewayRedis
import Logging
import Synchronization

/// How many gateway replicas share this Redis, from their heartbeats.
///
/// Every replica adds itself to one sorted set (`<prefix>replicas`), scored with Redis's clock, at
/// every `heartbeatInterval`; members silent for `expiry` are dropped by the next heartbeat of
/// anyone. The count is remembered: while Redis is unreachable, fallbacks divide shared budgets by
/// the last count seen (at least 1), so that N replicas on their own still keep about one budget.
public final class ReplicaRegistry: Sendable {
    public static let heartbeatInterval = Duration.seconds(1)
    /// Three missed heartbeats.
    public static let expiry = Duration.seconds(3)

    public let replicaID: String
    private let client: RedisClient
    private let key: [UInt8]
    private let known = Atomic<Int>(1)

    static let script = RedisScript(library: "eg_replicas_v1", function: "eg_heartbeat_v1", body: """
        \(RedisInstants.luaNow)
        local expiry = tonumber(args[2])
        redis.call('ZADD', keys[1], now, args[1])
        redis.call('ZREMRANGEBYSCORE', keys[1], '-inf', now - expiry)
        redis.call('PEXPIRE', keys[1], math.ceil(expiry / 1000))
        return redis.call('ZCARD', keys[1])
        """)

    public init(client: RedisClient, keyPrefix: String, replicaID: String) {
        self.client = client
        self.replicaID = replicaID
        key = Array((keyPrefix + "replicas").utf8)
    }

    /// Replicas alive at the last successful heartbeat (this one included); 1 before the first.
    public var replicaCount: Int { known.load(ordering: .relaxed) }

    /// One heartbeat; the count it saw, or nil when Redis did not answer (the count stays).
    @discardableResult
    public func beat() async -> Int? {
        do {
            let reply = try await Self.script.run(
                on: client, keys: [key],
                arguments: [Array(replicaID.utf8), RedisInstants.microsecondsArgument(Self.expiry.saturatingNanoseconds)])
            guard let count = RedisInstants.integer(reply), count >= 1, let value = Int(exactly: count) else { return nil }
            known.store(value, ordering: .relaxed)
            return value
        } catch {
            return nil
        }
    }

    /// Beats until cancelled.
    public func run() async {
        while !Task.isCancelled {
            await beat()
            do { try await Task.sleep(for: Self.heartbeatInterval) } catch { return }
        }
    }
}
