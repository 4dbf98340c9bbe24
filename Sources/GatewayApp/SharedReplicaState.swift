import GatewayCache
import GatewayConfig
import GatewayEventLoop
import GatewayRedis
import GatewayReplicas
import Logging

/// What this replica shares with the others through Redis (the `redis` section): one Redis
/// connection on an event loop of its own, the heartbeat that counts replicas, client limits,
/// provider budgets, index syncs and the response cache's L2. The mode (shared or local fallback) is logged at each change and exported as
/// `gateway_redis_connected`.
final class SharedReplicaState: Sendable {
    let client: RedisClient
    let registry: ReplicaRegistry
    let rateLimits: SharedRateLimitStore
    let callBudget: RedisCallBudget
    let indexSharing: RedisIndexSharing
    /// The response cache's store: `cacheL1` under Redis.
    let sharedCache: TieredCacheStore

    /// - Parameter indexRetention: how long a published index is kept (`cache.listTTLMs` plus
    ///   `cache.staleIfErrorMs`: no replica serves an older one).
    init(
        settings: RedisSettings, cacheL1: MemoryLRUStore, indexRetention: Duration, metrics: GatewayMetrics, logger: Logger
    ) throws(SystemError) {
        let loop = try EventLoop(name: "redis")
        try loop.start()
        let client = RedisClient(
            configuration: RedisClientConfiguration(endpoint: settings.endpoint, commandTimeout: settings.timeout), loop: loop)
        self.client = client
        let registry = ReplicaRegistry(client: client, keyPrefix: settings.keyPrefix, replicaID: RandomIdentifier.hex(byteCount: 8))
        self.registry = registry
        rateLimits = SharedRateLimitStore(
            client: client, keyPrefix: settings.keyPrefix, registry: registry,
            onFallback: { metrics.increment("gateway_rate_limit_local_fallback_total") })
        callBudget = RedisCallBudget(client: client, keyPrefix: settings.keyPrefix, registry: registry)
        indexSharing = RedisIndexSharing(client: client, keyPrefix: settings.keyPrefix, retention: indexRetention)
        sharedCache = TieredCacheStore(l1: cacheL1, redis: client, settings: SharedCacheSettings(keyPrefix: settings.keyPrefix))

        metrics.setGauge("gateway_redis_connected", 0)
        let endpoint = settings.endpoint.description
        client.onModeChange { mode, failure in
            metrics.setGauge("gateway_redis_connected", mode == .connected ? 1 : 0)
            metrics.increment("gateway_redis_mode_changes_total", [("mode", mode.rawValue)])
            // The first report, before the first connection is made, is no news.
            guard mode == .connected || failure != nil else { return }
            if mode == .connected {
                logger.notice("redis connected: limits, budgets and cache are shared with the other replicas",
                              metadata: ["redis": "\(endpoint)", "replicas": "\(registry.replicaCount)"])
            } else {
                logger.warning("redis unreachable: each replica limits clients and paces providers alone at 1/N of the budgets",
                               metadata: ["redis": "\(endpoint)", "replicas": "\(registry.replicaCount)",
                                          "reason": "\(failure.map { "\($0)" } ?? "unknown")"])
            }
        }
    }

    func shutdown() async {
        // Its listener's own connection first, then the one every other command uses.
        await sharedCache.shutdown()
        await client.shutdown()
    }
}
