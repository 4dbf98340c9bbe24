import Synchronization
import Testing
@testable import GatewayRateLimit

final class ManualClock: Sendable {
    private let nanoseconds: Atomic<UInt64>
    init(_ start: UInt64) { nanoseconds = Atomic(start) }
    var now: @Sendable () -> UInt64 { { self.nanoseconds.load(ordering: .relaxed) } }
    func set(_ value: UInt64) { nanoseconds.store(value, ordering: .relaxed) }
}

let second: UInt64 = 1_000_000_000
let t0: UInt64 = 5 * second

@Suite struct RateLimitPolicyTests {
    @Test func derivesIntervalAndTolerance() throws {
        let policy = try RateLimitPolicy(requestsPerSecond: 10, burst: 5)
        #expect(policy.emissionIntervalNanoseconds == 100_000_000)
        #expect(policy.burstToleranceNanoseconds == 500_000_000)
        #expect(try RateLimitPolicy(requestsPerSecond: 3, burst: 1).emissionIntervalNanoseconds == 333_333_333)
        #expect(try RateLimitPolicy(requestsPerSecond: 0.5, burst: 1).emissionIntervalNanoseconds == 2 * second)
    }

    @Test func rejectsNonsense() {
        #expect(throws: RateLimitPolicyError.requestsPerSecondNotPositive(0)) { try RateLimitPolicy(requestsPerSecond: 0, burst: 1) }
        #expect(throws: RateLimitPolicyError.requestsPerSecondNotPositive(-1)) { try RateLimitPolicy(requestsPerSecond: -1, burst: 1) }
        #expect(throws: RateLimitPolicyError.self) { try RateLimitPolicy(requestsPerSecond: .nan, burst: 1) }
        #expect(throws: RateLimitPolicyError.self) { try RateLimitPolicy(requestsPerSecond: .infinity, burst: 1) }
        #expect(throws: RateLimitPolicyError.burstNotPositive(0)) { try RateLimitPolicy(requestsPerSecond: 1, burst: 0) }
        #expect(throws: RateLimitPolicyError.burstNotPositive(-3)) { try RateLimitPolicy(requestsPerSecond: 1, burst: -3) }
        #expect(throws: RateLimitPolicyError.outOfRange(requestsPerSecond: 1e10, burst: 1)) {
            try RateLimitPolicy(requestsPerSecond: 1e10, burst: 1)
        }
        #expect(throws: RateLimitPolicyError.outOfRange(requestsPerSecond: 1e-12, burst: 1)) {
            try RateLimitPolicy(requestsPerSecond: 1e-12, burst: 1)
        }
        #expect(throws: RateLimitPolicyError.outOfRange(requestsPerSecond: 1, burst: Int.max)) {
            try RateLimitPolicy(requestsPerSecond: 1, burst: Int.max)
        }
    }
}

@Suite struct MemoryRateLimitStoreTests {
    let clock = ManualClock(t0)
    let store: MemoryRateLimitStore

    init() { store = MemoryRateLimitStore(now: clock.now) }

    @Test func admitsExactlyTheBurstAtOneInstant() throws {
        let policy = try RateLimitPolicy(requestsPerSecond: 10, burst: 5)
        let decisions = (0..<7).map { _ in store.acquire(key: "c", policy: policy, cost: 1) }
        #expect(decisions.map(\.allowed) == [true, true, true, true, true, false, false])
        #expect(decisions.map(\.remaining) == [4, 3, 2, 1, 0, 0, 0])
        #expect(decisions.allSatisfy { $0.limit == 5 })
    }

    @Test func refillsOneRequestExactlyEveryInterval() throws {
        let policy = try RateLimitPolicy(requestsPerSecond: 10, burst: 2)
        #expect(store.acquire(key: "c", policy: policy, cost: 1).allowed)
        #expect(store.acquire(key: "c", policy: policy, cost: 1).allowed)
        clock.set(t0 + 100_000_000 - 1)
        #expect(!store.acquire(key: "c", policy: policy, cost: 1).allowed)
        clock.set(t0 + 100_000_000)
        #expect(store.acquire(key: "c", policy: policy, cost: 1).allowed)
        #expect(!store.acquire(key: "c", policy: policy, cost: 1).allowed)
        // Denials do not push the next admission back.
        clock.set(t0 + 200_000_000)
        #expect(store.acquire(key: "c", policy: policy, cost: 1).allowed)
    }

    @Test func reportsRemainingResetAndRetryAfter() throws {
        // T = 2 s, burst 3: a full bucket takes 6 s to refill.
        let policy = try RateLimitPolicy(requestsPerSecond: 0.5, burst: 3)
        let first = store.acquire(key: "c", policy: policy, cost: 1)
        #expect(first == RateLimitDecision(allowed: true, limit: 3, remaining: 2, resetSeconds: 2, retryAfterSeconds: nil))
        _ = store.acquire(key: "c", policy: policy, cost: 1)
        let third = store.acquire(key: "c", policy: policy, cost: 1)
        #expect(third == RateLimitDecision(allowed: true, limit: 3, remaining: 0, resetSeconds: 6, retryAfterSeconds: nil))
        let denied = store.acquire(key: "c", policy: policy, cost: 1)
        #expect(denied == RateLimitDecision(allowed: false, limit: 3, remaining: 0, resetSeconds: 6, retryAfterSeconds: 2))

        // 0.5 s later: 1.5 s until the next admission, rounded up to 2; 5.5 s until full, rounded up to 6.
        clock.set(t0 + second / 2)
        #expect(store.acquire(key: "c", policy: policy, cost: 1)
            == RateLimitDecision(allowed: false, limit: 3, remaining: 0, resetSeconds: 6, retryAfterSeconds: 2))
        // 1 ns before the admission: still at least 1 s, never 0.
        clock.set(t0 + 2 * second - 1)
        #expect(store.acquire(key: "c", policy: policy, cost: 1).retryAfterSeconds == 1)
        // 3.5 s in, 1.75 intervals have refilled: one request fits, the TAT moves to t0 + 8 s (4.5 s ahead).
        clock.set(t0 + 3 * second + second / 2)
        let later = store.acquire(key: "c", policy: policy, cost: 1)
        #expect(later == RateLimitDecision(allowed: true, limit: 3, remaining: 0, resetSeconds: 5, retryAfterSeconds: nil))
        // Long idle: the bucket is full again.
        clock.set(t0 + 100 * second)
        #expect(store.acquire(key: "c", policy: policy, cost: 0)
            == RateLimitDecision(allowed: true, limit: 3, remaining: 3, resetSeconds: 0, retryAfterSeconds: nil))
    }

    @Test func costAboveTheBurstIsNeverAdmitted() throws {
        let policy = try RateLimitPolicy(requestsPerSecond: 1, burst: 3)
        let decision = store.acquire(key: "c", policy: policy, cost: 4)
        #expect(!decision.allowed && decision.remaining == 3 && decision.retryAfterSeconds == 1)
        #expect(store.acquire(key: "c", policy: policy, cost: 3).allowed)
    }

    @Test func headerFieldsFollowTheDecision() {
        let allowed = RateLimitDecision(allowed: true, limit: 40, remaining: 39, resetSeconds: 1, retryAfterSeconds: nil)
        #expect(allowed.headerFields.map { "\($0.0): \($0.1)" }
            == ["RateLimit-Limit: 40", "RateLimit-Remaining: 39", "RateLimit-Reset: 1"])
        let denied = RateLimitDecision(allowed: false, limit: 40, remaining: 0, resetSeconds: 2, retryAfterSeconds: 1)
        #expect(denied.headerFields.map { "\($0.0): \($0.1)" }
            == ["RateLimit-Limit: 40", "RateLimit-Remaining: 0", "RateLimit-Reset: 2", "Retry-After: 1"])
    }

    @Test func keysAreIndependent() throws {
        let policy = try RateLimitPolicy(requestsPerSecond: 1, burst: 1)
        #expect(store.acquire(key: "a", policy: policy, cost: 1).allowed)
        #expect(!store.acquire(key: "a", policy: policy, cost: 1).allowed)
        #expect(store.acquire(key: "b", policy: policy, cost: 1).allowed)
    }

    @Test func concurrentCallersShareTheBurstExactly() async throws {
        let policy = try RateLimitPolicy(requestsPerSecond: 1, burst: 100)
        let store = self.store
        let admitted = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<1_000 {
                group.addTask { await store.acquire(key: "shared", policy: policy).allowed }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        #expect(admitted == 100)
    }

    @Test func roundingIsUpAndRetryAfterAtLeastOne() throws {
        // T = 1.5 s: ceil for every fractional second.
        let policy = try RateLimitPolicy(requestsPerSecond: 2.0 / 3.0, burst: 1)
        #expect(policy.emissionIntervalNanoseconds == 1_500_000_000)
        #expect(store.acquire(key: "c", policy: policy, cost: 1).resetSeconds == 2)
        let denied = store.acquire(key: "c", policy: policy, cost: 1)
        #expect(denied.retryAfterSeconds == 2 && denied.resetSeconds == 2)
        clock.set(t0 + 1_500_000_000 - 1)
        let almost = store.acquire(key: "c", policy: policy, cost: 1)
        #expect(!almost.allowed && almost.retryAfterSeconds == 1 && almost.resetSeconds == 1)
        #expect(RateLimitDecision.wholeSecondsRoundedUp(0) == 0)
        #expect(RateLimitDecision.wholeSecondsRoundedUp(1) == 1)
        #expect(RateLimitDecision.wholeSecondsRoundedUp(second) == 1)
        #expect(RateLimitDecision.wholeSecondsRoundedUp(second + 1) == 2)
    }

    /// A `429`'s `Retry-After` is the whole seconds until the next request is admitted and its
    /// `RateLimit-Reset` the whole seconds until the bucket is full, both rounded up: so `Retry-After: 1`
    /// beside `RateLimit-Reset: 2` is one token back after a second and the whole burst after two.
    /// Probed with cost 0, which takes nothing and reports what is left.
    @Test(arguments: [(1.0, 2), (10.0, 5), (2.0 / 3.0, 1), (3.0, 4), (0.25, 3)])
    func retryAfterIsTheNextAdmissionAndResetTheFullBucket(requestsPerSecond: Double, burst: Int) throws {
        let policy = try RateLimitPolicy(requestsPerSecond: requestsPerSecond, burst: burst)
        var denied = store.acquire(key: "c", policy: policy, cost: 1)
        while denied.allowed { denied = store.acquire(key: "c", policy: policy, cost: 1) }
        let retryAfter = try #require(denied.retryAfterSeconds)
        #expect(retryAfter >= 1 && retryAfter <= denied.resetSeconds)
        func remaining(afterSeconds seconds: Int) -> Int {
            clock.set(t0 + UInt64(seconds) * second)
            return store.acquire(key: "c", policy: policy, cost: 0).remaining
        }
        #expect(remaining(afterSeconds: retryAfter - 1) == 0)
        #expect(remaining(afterSeconds: retryAfter) >= 1)
        #expect(remaining(afterSeconds: denied.resetSeconds - 1) < burst)
        #expect(remaining(afterSeconds: denied.resetSeconds) == burst)
    }

    @Test func idleKeysAreSweptWithoutChangingDecisions() throws {
        let fast = try RateLimitPolicy(requestsPerSecond: 1000, burst: 1)
        let slow = try RateLimitPolicy(requestsPerSecond: 0.1, burst: 1)
        for index in 0..<(BucketTable.minimumSweepThreshold - 1) {
            #expect(store.acquire(key: "idle-\(index)", policy: fast, cost: 1).allowed)
        }
        #expect(store.acquire(key: "busy", policy: slow, cost: 1).allowed)
        #expect(store.trackedKeyCount == BucketTable.minimumSweepThreshold)
        // Once the idle keys' TATs are in the past, the next call sweeps them; the limited key survives.
        clock.set(t0 + second)
        #expect(!store.acquire(key: "busy", policy: slow, cost: 1).allowed)
        #expect(store.trackedKeyCount == 1)
        #expect(store.acquire(key: "idle-0", policy: fast, cost: 1).allowed)
        clock.set(t0 + 10 * second - 1)
        #expect(!store.acquire(key: "busy", policy: slow, cost: 1).allowed)
        clock.set(t0 + 10 * second)
        #expect(store.acquire(key: "busy", policy: slow, cost: 1).allowed)
    }
}

@Suite struct BoundedRateLimitStoreTests {
    @Test func keysChosenByTheOtherSideCannotGrowTheTablePastMaxKeys() throws {
        let clock = ManualClock(t0)
        let store = MemoryRateLimitStore(maxKeys: 100, now: clock.now)
        let policy = try RateLimitPolicy(requestsPerSecond: 1, burst: 5)
        // Every bucket stays non-full for the whole loop (the clock does not move), so the sweep of
        // expired keys alone would keep all ten thousand.
        for index in 0..<10_000 {
            #expect(store.acquire(key: "10.0.\(index / 256).\(index % 256)", policy: policy, cost: 1).allowed)
        }
        #expect(store.trackedKeyCount == 100)
        // A key already held keeps its bucket.
        let held = "held"
        for _ in 0..<5 { _ = store.acquire(key: held, policy: policy, cost: 1) }
        #expect(!store.acquire(key: held, policy: policy, cost: 1).allowed)
        #expect(store.trackedKeyCount == 100)
    }
}
