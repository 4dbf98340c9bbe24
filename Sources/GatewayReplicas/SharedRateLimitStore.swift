import GatewayEventLoop
public import GatewayRateLimit
public import GatewayRedis

/// Client buckets kept in Redis, so that every replica draws from the same ones.
///
/// One Redis Function runs GCRA (the steps `MemoryRateLimitStore` documents) on Redis's own clock,
/// in one round trip per decision: replicas never use their own clocks for it, and a refused
/// request takes nothing. The decision, and so `RateLimit-*` and `Retry-After`, is the same
/// whichever replica asks.
///
/// A decision past `redis.timeoutMs` on a connection that still answers waits for Redis: the
/// script may run late, and a local decision beside it would admit the request on both counts.
/// When Redis cannot answer (connection lost or stalled, breaker open), the decision is taken by a
/// local bucket at `1/N` of the policy (N from `ReplicaRegistry`, remembered), so N replicas on
/// their own admit about the shared limit; no request fails because of Redis.
public final class SharedRateLimitStore: RateLimitStore {
    private let client: RedisClient
    private let keyPrefix: String
    private let registry: ReplicaRegistry
    private let fallback: MemoryRateLimitStore
    private let onFallback: @Sendable () -> Void

    static let script = RedisScript(library: "eg_gcra_v1", function: "eg_gcra_v1", body: """
        \(RedisInstants.luaNow)
        local interval = tonumber(args[1])
        local tolerance = tonumber(args[2])
        local cost = tonumber(args[3])
        local burst = tonumber(args[4])
        local tat = tonumber(redis.call('GET', keys[1]) or '') or now
        local base = math.max(tat, now)
        local newTat = base + math.min(math.max(cost, 0), burst) * interval
        if cost <= burst and newTat - now <= tolerance then
          if newTat > now then
            redis.call('SET', keys[1], string.format('%.3f', newTat), 'PX', math.max(1, math.ceil((newTat - now) / 1000)))
          end
          return {1, string.format('%.3f', base - now), string.format('%.3f', newTat - now)}
        end
        return {0, string.format('%.3f', base - now), string.format('%.3f', base - now)}
        """)

    /// - Parameter onFallback: called for each decision the local fallback took (for metrics).
    public init(
        client: RedisClient, keyPrefix: String, registry: ReplicaRegistry,
        fallbackMaxKeys: Int = 65_536, onFallback: @escaping @Sendable () -> Void = {}
    ) {
        self.client = client
        self.keyPrefix = keyPrefix + "rl:"
        self.registry = registry
        fallback = MemoryRateLimitStore(maxKeys: fallbackMaxKeys)
        self.onFallback = onFallback
    }

    public nonisolated(nonsending) func acquire(key: String, policy: RateLimitPolicy, cost: Int) async -> RateLimitDecision {
        // With the breaker open and no connection, the client refuses at once: no wait here.
        do {
            let reply = try await Self.script.run(
                on: client, keys: [Array((keyPrefix + key).utf8)],
                arguments: [
                    RedisInstants.microsecondsArgument(policy.emissionIntervalNanoseconds),
                    RedisInstants.microsecondsArgument(policy.burstToleranceNanoseconds),
                    Array(String(cost).utf8), Array(String(policy.burst).utf8),
                ],
                // Past the deadline Redis may still take the request: deciding here as well could
                // admit it twice, so the shared answer is awaited while the connection answers.
                waitPastDeadline: true)
            if let decision = Self.decision(from: reply, policy: policy, cost: cost) { return decision }
        } catch {
            // Falls back below.
        }
        onFallback()
        return fallback.acquire(key: key, policy: Self.share(of: policy, replicas: registry.replicaCount), cost: cost)
    }

    /// One replica's part of `policy` among `replicas`: the rate divided, the burst divided
    /// (rounded up, at least 1, so a single request always fits).
    static func share(of policy: RateLimitPolicy, replicas: Int) -> RateLimitPolicy {
        guard replicas > 1 else { return policy }
        let burst = max(1, (policy.burst + replicas - 1) / replicas)
        return (try? RateLimitPolicy(requestsPerSecond: policy.requestsPerSecond / Double(replicas), burst: burst)) ?? policy
    }

    static func decision(from reply: RedisReply, policy: RateLimitPolicy, cost: Int) -> RateLimitDecision? {
        guard case .array(let fields) = reply, fields.count == 3,
              let allowed = RedisInstants.integer(fields[0]),
              let base = RedisInstants.nanoseconds(fromMicroseconds: fields[1]),
              let after = RedisInstants.nanoseconds(fromMicroseconds: fields[2])
        else { return nil }
        return RateLimitDecision(
            policy: policy, cost: cost, allowed: allowed == 1, baseOffsetNanoseconds: base, afterOffsetNanoseconds: after)
    }
}
