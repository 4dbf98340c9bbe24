public import GatewayEventLoop
import Synchronization

/// Token buckets in process memory, computed with GCRA (the generic cell rate algorithm).
///
/// GCRA keeps one number per key, the theoretical arrival time `tat` (monotonic ns; absent = a full
/// bucket). With `T` = `policy.emissionIntervalNanoseconds`, `B` = `policy.burstToleranceNanoseconds`,
/// `now` from the clock and a request of cost `c` (all integers):
///
///     base    = max(tat, now)
///     newTat  = base + c·T
///     allowed = newTat − now ≤ B                  (c > burst is never allowed)
///     if allowed: tat = newTat                    (a denial changes nothing)
///     after   = allowed ? newTat : base
///     remaining  = max(0, (B − (after − now)) / T)          integer division, rounds down
///     reset      = ceil((after − now) / 1e9)                seconds until tat ≤ now
///     retryAfter = max(1, ceil((newTat − B − now) / 1e9))   when denied and c ≤ burst;
///                  max(1, ceil((base − now) / 1e9))         when c > burst (the bucket is then full)
///
/// So a full bucket admits exactly `burst` requests at one instant, and after that one more every `T`
/// nanoseconds, the first at exactly `now + T`. A Redis store runs the same steps in one Lua script
/// with `tat` stored under the key (expiring at `tat`, since an expired `tat` means a full bucket).
///
/// Keys whose `tat` is in the past are indistinguishable from absent ones and are swept out whenever the
/// table has doubled since the last sweep, so memory stays proportional to recently active keys at an
/// amortised O(1) per call. With `maxKeys`, a new key that finds the table full after the sweep
/// evicts an arbitrary one (whose caller then starts from a full bucket): keys chosen by the
/// other side, such as client addresses, cannot grow the table past that.
public final class MemoryRateLimitStore: RateLimitStore {
    private let now: @Sendable () -> UInt64
    private let state: Mutex<BucketTable>

    public init(maxKeys: Int = .max, now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        self.now = now
        state = Mutex(BucketTable(maxKeys: max(1, maxKeys)))
    }

    /// `cost` below 0 counts as 0 (a query that takes nothing).
    public func acquire(key: String, policy: RateLimitPolicy, cost: Int) -> RateLimitDecision {
        let instant = now()
        let interval = policy.emissionIntervalNanoseconds
        let tolerance = policy.burstToleranceNanoseconds
        let fitsBurst = cost <= policy.burst
        // Clamped so that c·T cannot overflow; a cost above the burst is refused before it is used.
        let increment = UInt64(min(max(cost, 0), policy.burst)) * interval

        let (allowed, base, after) = state.withLock { table -> (Bool, UInt64, UInt64) in
            table.sweepIfGrown(now: instant)
            // Hashed once: a known key (every request of a client after its first) is updated
            // through the index the lookup found.
            let known = table.arrivals.index(forKey: key)
            let base = max(known.map { table.arrivals.values[$0] } ?? 0, instant)
            let newArrival = base + increment
            if fitsBurst && newArrival - instant <= tolerance {
                if let known {
                    table.arrivals.values[known] = newArrival
                } else {
                    table.makeRoomForNewKey()
                    table.arrivals[key] = newArrival
                }
                return (true, base, newArrival)
            }
            return (false, base, base)
        }

        return RateLimitDecision(
            policy: policy, cost: cost, allowed: allowed, baseOffsetNanoseconds: base - instant, afterOffsetNanoseconds: after - instant)
    }

    /// Keys currently held (tests check the sweep through this).
    var trackedKeyCount: Int { state.withLock { $0.arrivals.count } }

}

struct BucketTable: ~Copyable {
    static let minimumSweepThreshold = 1_024

    /// Theoretical arrival time per key.
    var arrivals: [String: UInt64] = [:]
    var sweepThreshold = BucketTable.minimumSweepThreshold
    let maxKeys: Int

    init(maxKeys: Int) {
        self.maxKeys = maxKeys
    }

    /// Evicts one key when `key` is new and the table holds `maxKeys` already.
    mutating func makeRoomForNewKey() {
        guard arrivals.count >= maxKeys, !arrivals.isEmpty else { return }
        arrivals.remove(at: arrivals.startIndex)
    }

    mutating func sweepIfGrown(now: UInt64) {
        guard arrivals.count >= sweepThreshold else { return }
        arrivals = arrivals.filter { $0.value > now }
        sweepThreshold = max(BucketTable.minimumSweepThreshold, arrivals.count * 2)
    }
}
