import GatewayEventLoop
public import GatewayRateLimit
public import GatewayRedis
import Synchronization

/// Client buckets kept in Redis, so that every replica draws from the same ones.
///
/// One Redis Function runs GCRA (the steps `MemoryRateLimitStore` documents) on Redis's own clock:
/// replicas never use their own clocks for it, and a refused request takes nothing. The decision,
/// and so `RateLimit-*` and `Retry-After`, is the same whichever replica asks.
///
/// Decisions asked for on an event loop in the same turn of that loop (the requests its
/// connections delivered together) go to Redis as one call, sent when the turn ends: one round
/// trip and one script run for all of them instead of one each, which is most of what the shared
/// limits cost Redis and the gateway under load. The script takes them in order, so two decisions
/// on one bucket in a batch are taken one after the other, as two calls would be.
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
    /// The decisions each event loop gathered in its current turn.
    private let batches = Mutex<[ObjectIdentifier: LoopBatch]>([:])

    /// The most decisions one call carries; a turn that gathered more sends several calls.
    static let maximumBatch = 256

    /// Arguments in groups of four per key: interval and tolerance (microseconds), cost, burst.
    /// The reply holds three values per key: allowed (1/0), then the offsets before and after.
    static let script = RedisScript(library: "eg_gcra_v2", function: "eg_gcra_v2", body: """
        \(RedisInstants.luaNow)
        local replies = {}
        for i = 1, #keys do
          local at = (i - 1) * 4
          local interval = tonumber(args[at + 1])
          local tolerance = tonumber(args[at + 2])
          local cost = tonumber(args[at + 3])
          local burst = tonumber(args[at + 4])
          local tat = tonumber(redis.call('GET', keys[i]) or '') or now
          local base = math.max(tat, now)
          local newTat = base + math.min(math.max(cost, 0), burst) * interval
          if cost <= burst and newTat - now <= tolerance then
            if newTat > now then
              redis.call('SET', keys[i], string.format('%.3f', newTat), 'PX', math.max(1, math.ceil((newTat - now) / 1000)))
            end
            replies[#replies + 1] = 1
            replies[#replies + 1] = string.format('%.3f', base - now)
            replies[#replies + 1] = string.format('%.3f', newTat - now)
          else
            replies[#replies + 1] = 0
            replies[#replies + 1] = string.format('%.3f', base - now)
            replies[#replies + 1] = string.format('%.3f', base - now)
          end
        end
        return replies
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
        let request = DecisionRequest(key: key, policy: policy, cost: cost)
        return await withCheckedContinuation { continuation in
            // Off every loop (tools, tests) there is no turn to gather in: a call for this one.
            guard let loop = EventLoop.current else {
                Task.immediate { await self.resolve([(request, continuation)]) }
                return
            }
            let batch = batch(for: loop)
            batch.waiting.append((request, continuation))
            if batch.waiting.count == 1 {
                loop.runAtIterationEnd { self.send(batch, on: loop) }
            }
        }
    }

    private func batch(for loop: EventLoop) -> LoopBatch {
        batches.withLock { batches in
            if let batch = batches[ObjectIdentifier(loop)] { return batch }
            let batch = LoopBatch()
            batches[ObjectIdentifier(loop)] = batch
            return batch
        }
    }

    /// At the end of the loop's turn: everything gathered, in calls of at most `maximumBatch`.
    private func send(_ batch: LoopBatch, on loop: EventLoop) {
        let waiting = batch.waiting
        batch.waiting = []
        var start = 0
        while start < waiting.count {
            let part = Array(waiting[start..<min(start + Self.maximumBatch, waiting.count)])
            start += part.count
            Task.immediate(executorPreference: loop) { await self.resolve(part) }
        }
    }

    /// Answers every waiting request exactly once: all with Redis's decisions, or, when Redis
    /// could not answer, all with the local fallback's.
    private func resolve(_ waiting: [WaitingDecision]) async {
        let shared = await sharedDecisions(for: waiting.map(\.request))
        if let shared, shared.count == waiting.count {
            for ((_, continuation), decision) in zip(waiting, shared) { continuation.resume(returning: decision) }
            return
        }
        let replicas = registry.replicaCount
        for (request, continuation) in waiting {
            onFallback()
            continuation.resume(returning: fallback.acquire(
                key: request.key, policy: Self.share(of: request.policy, replicas: replicas), cost: request.cost))
        }
    }

    /// Redis's decisions, one per request in order; nil when Redis could not answer.
    private func sharedDecisions(for requests: [DecisionRequest]) async -> [RateLimitDecision]? {
        // With the breaker open and no connection, the client refuses at once: no wait here.
        var arguments: [[UInt8]] = []
        arguments.reserveCapacity(requests.count * 4)
        for request in requests {
            arguments.append(RedisInstants.microsecondsArgument(request.policy.emissionIntervalNanoseconds))
            arguments.append(RedisInstants.microsecondsArgument(request.policy.burstToleranceNanoseconds))
            arguments.append(Array(String(request.cost).utf8))
            arguments.append(Array(String(request.policy.burst).utf8))
        }
        guard let reply = try? await Self.script.run(
            on: client, keys: requests.map { Array((keyPrefix + $0.key).utf8) }, arguments: arguments,
            // Past the deadline Redis may still take the requests: deciding here as well could
            // admit them twice, so the shared answer is awaited while the connection answers.
            waitPastDeadline: true)
        else { return nil }
        return Self.decisions(from: reply, for: requests)
    }

    /// One replica's part of `policy` among `replicas`: the rate divided, the burst divided
    /// (rounded up, at least 1, so a single request always fits).
    static func share(of policy: RateLimitPolicy, replicas: Int) -> RateLimitPolicy {
        guard replicas > 1 else { return policy }
        let burst = max(1, (policy.burst + replicas - 1) / replicas)
        return (try? RateLimitPolicy(requestsPerSecond: policy.requestsPerSecond / Double(replicas), burst: burst)) ?? policy
    }

    /// The script's reply as one decision per request; nil when any part is not what it returns.
    static func decisions(from reply: RedisReply, for requests: [DecisionRequest]) -> [RateLimitDecision]? {
        guard case .array(let fields) = reply, fields.count == requests.count * 3 else { return nil }
        var decisions: [RateLimitDecision] = []
        decisions.reserveCapacity(requests.count)
        for (index, request) in requests.enumerated() {
            guard let decision = decision(from: fields[index * 3..<index * 3 + 3], policy: request.policy, cost: request.cost)
            else { return nil }
            decisions.append(decision)
        }
        return decisions
    }

    static func decision(from fields: ArraySlice<RedisReply>, policy: RateLimitPolicy, cost: Int) -> RateLimitDecision? {
        guard fields.count == 3,
              let allowed = RedisInstants.integer(fields[fields.startIndex]),
              let base = RedisInstants.nanoseconds(fromMicroseconds: fields[fields.startIndex + 1]),
              let after = RedisInstants.nanoseconds(fromMicroseconds: fields[fields.startIndex + 2])
        else { return nil }
        return RateLimitDecision(
            policy: policy, cost: cost, allowed: allowed == 1, baseOffsetNanoseconds: base, afterOffsetNanoseconds: after)
    }
}

struct DecisionRequest: Sendable {
    let key: String
    let policy: RateLimitPolicy
    let cost: Int
}

/// A request for a decision, with the caller waiting for it.
private typealias WaitingDecision = (request: DecisionRequest, continuation: CheckedContinuation<RateLimitDecision, Never>)

/// The decisions one loop gathered in its current turn, with the requests waiting for them.
private final class LoopBatch: @unchecked Sendable {
    // @unchecked: read and written only on its loop's thread (`acquire` runs there, and `send` is
    // that loop's end-of-turn work).
    var waiting: [WaitingDecision] = []
}
