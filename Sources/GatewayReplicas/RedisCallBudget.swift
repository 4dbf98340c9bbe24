import GatewayEventLoop
public import GatewayRedis
public import GatewayUpstream

/// Provider budgets kept in Redis for all replicas: `OutboundPacer`'s steps (a GCRA slot for the
/// per-second budget, the rolling 60 s window for the per-minute one) run in one Redis Function on
/// Redis's clock, and Retry-After pauses are one key per credential that every reservation reads
/// first.
///
/// Keys, under `<prefix>up:<provider>:`: `tat` (the per-second budget's next arrival), `minute` (a
/// sorted set of the last `perMinute` slots), `seq` (unique members for it), `pause:<credential
/// identity>`. Each expires when it no longer constrains anything.
public final class RedisCallBudget: SharedCallBudget {
    private let client: RedisClient
    private let keyPrefix: String
    private let registry: ReplicaRegistry

    static let reserveScript = RedisScript(library: "eg_pace_v1", function: "eg_pace_v1", body: """
        \(RedisInstants.luaNow)
        local pauseEnd = tonumber(redis.call('GET', keys[3]) or '') or 0
        if pauseEnd > now then return {2, string.format('%.3f', pauseEnd - now), 0} end
        local interval = tonumber(args[1])
        local tolerance = tonumber(args[2])
        local perMinute = tonumber(args[3])
        local maxWait = tonumber(args[4])
        local window = 60000000
        local slot = now
        local arrival = now
        if interval > 0 then
          arrival = math.max(tonumber(redis.call('GET', keys[1]) or '') or 0, now)
          slot = math.max(now, arrival - tolerance)
        end
        local minuteBudget = 0
        local count = 0
        if perMinute > 0 then
          redis.call('ZREMRANGEBYSCORE', keys[2], '-inf', now - window)
          count = redis.call('ZCARD', keys[2])
          if count > 0 then
            local latest = redis.call('ZRANGE', keys[2], -1, -1, 'WITHSCORES')
            slot = math.max(slot, tonumber(latest[2]))
          end
          if count >= perMinute then
            local oldest = redis.call('ZRANGE', keys[2], count - perMinute, count - perMinute, 'WITHSCORES')
            local opens = tonumber(oldest[2]) + window
            if opens > slot then
              slot = opens
              minuteBudget = 1
            end
          end
        end
        if slot - now > maxWait then return {0, string.format('%.3f', slot - now), minuteBudget} end
        if interval > 0 then
          local nextArrival = math.max(arrival, slot) + interval
          redis.call('SET', keys[1], string.format('%.3f', nextArrival), 'PX', math.max(1, math.ceil((nextArrival - now) / 1000)))
        end
        local left = -1
        if perMinute > 0 then
          local sequence = redis.call('INCR', keys[4])
          redis.call('ZADD', keys[2], slot, string.format('%.3f', slot) .. ':' .. sequence)
          if count + 1 > perMinute then redis.call('ZREMRANGEBYRANK', keys[2], 0, count - perMinute) end
          local keep = math.ceil((slot - now + window) / 1000) + 1000
          redis.call('PEXPIRE', keys[2], keep)
          redis.call('PEXPIRE', keys[4], keep)
          left = perMinute - math.min(perMinute, count + 1)
        end
        return {1, string.format('%.3f', slot - now), left}
        """)

    static let pauseScript = RedisScript(library: "eg_pause_v1", function: "eg_pause_v1", body: """
        \(RedisInstants.luaNow)
        local pauseEnd = now + tonumber(args[1])
        local current = tonumber(redis.call('GET', keys[1]) or '') or 0
        if pauseEnd > current then
          redis.call('SET', keys[1], string.format('%.3f', pauseEnd), 'PX', math.max(1, math.ceil((pauseEnd - now) / 1000)))
        end
        return 1
        """)

    public init(client: RedisClient, keyPrefix: String, registry: ReplicaRegistry) {
        self.client = client
        self.keyPrefix = keyPrefix + "up:"
        self.registry = registry
    }

    public var replicaCount: Int { registry.replicaCount }

    public func reserve(
        endpoint: String, credentialKey: String, pacing: SharedPacing, maxWaitNanoseconds: UInt64
    ) async -> SharedCallReservation? {
        let base = keyPrefix + endpoint + ":"
        let reply: RedisReply
        do {
            reply = try await Self.reserveScript.run(
                on: client,
                keys: [base + "tat", base + "minute", base + "pause:" + credentialKey, base + "seq"].map { Array($0.utf8) },
                arguments: [
                    RedisInstants.microsecondsArgument(pacing.intervalNanoseconds),
                    RedisInstants.microsecondsArgument(pacing.toleranceNanoseconds),
                    Array(String(pacing.perMinute).utf8),
                    RedisInstants.microsecondsArgument(maxWaitNanoseconds),
                ],
                // A late reservation still holds its slot: wait for it rather than pace locally too.
                waitPastDeadline: true)
        } catch {
            return nil
        }
        return Self.reservation(from: reply)
    }

    public func pause(endpoint: String, credentialKey: String, nanoseconds: UInt64) async {
        // Best effort: without Redis, the replica that was told pauses alone.
        _ = try? await Self.pauseScript.run(
            on: client, keys: [Array((keyPrefix + endpoint + ":pause:" + credentialKey).utf8)],
            arguments: [RedisInstants.microsecondsArgument(nanoseconds)])
    }

    static func reservation(from reply: RedisReply) -> SharedCallReservation? {
        guard case .array(let fields) = reply, fields.count == 3,
              let kind = RedisInstants.integer(fields[0]),
              let delay = RedisInstants.nanoseconds(fromMicroseconds: fields[1]),
              let third = RedisInstants.integer(fields[2])
        else { return nil }
        switch kind {
        case 1: return .slot(delayNanoseconds: delay, callsLeftThisMinute: third >= 0 ? Int(exactly: third) : nil)
        case 0: return .beyondDeadline(delayNanoseconds: delay, minuteBudget: third == 1)
        case 2: return .paused(remainingNanoseconds: delay)
        default: return nil
        }
    }
}
