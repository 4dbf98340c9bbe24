public import GatewayEventLoop
public import GatewayRedis
import Synchronization

/// How a `TieredCacheStore` uses Redis.
public struct SharedCacheSettings: Sendable {
    /// Longer than any load (an upstream call with its retries), or a second replica starts loading
    /// while the first still is; short enough that a replica dying with the lock delays the others
    /// only this long.
    public static let defaultLockTTL: Duration = .seconds(15)
    public static let defaultCompressionThreshold = 1024

    /// Prefix of every Redis key (`redis.keyPrefix`): entries are `<keyPrefix>c:<cache key>`, load
    /// locks `<keyPrefix>l:<cache key>`.
    public var keyPrefix: String
    /// The load lock's `PX`: how long a lock whose holder died keeps the others waiting.
    public var lockTTL: Duration
    /// How long a load waits for another replica's load before loading itself.
    public var maximumLockWait: Duration
    /// Bodies of at least this many bytes are deflated in Redis.
    public var compressionThreshold: Int

    public init(
        keyPrefix: String,
        lockTTL: Duration = Self.defaultLockTTL,
        maximumLockWait: Duration = Self.defaultLockTTL,
        compressionThreshold: Int = Self.defaultCompressionThreshold
    ) {
        self.keyPrefix = keyPrefix
        self.lockTTL = lockTTL
        self.maximumLockWait = maximumLockWait
        self.compressionThreshold = compressionThreshold
    }
}

/// What the shared tier has done since start, for `/metrics`.
public struct SharedCacheStatistics: Sendable, Hashable {
    /// L2 reads that found a valid entry (fresh or stale).
    public var l2Hits = 0
    /// L2 reads that found nothing, or something that is not a valid envelope (also in `l2Corrupt`).
    public var l2Misses = 0
    public var l2Corrupt = 0
    /// Redis calls that failed (deadline, lost connection, breaker open, an error reply); each was
    /// answered from L1 or by loading locally instead.
    public var l2Errors = 0
    /// Entries written to L2.
    public var l2Stores = 0
    /// Loads that found another replica holding the key's load lock and waited for it.
    public var lockWaits = 0
    /// Loads that did not happen because another replica's entry arrived: misses coalesced across replicas.
    public var loadsCoalescedAcrossReplicas = 0
    /// Reports from Redis that another replica changed a key (each dropped that key's L1 entry).
    public var invalidationReports = 0
    /// Reports of this replica's own writes (its L1 entry stays).
    public var ownWriteReports = 0
    /// Times all of L1 was dropped: the invalidation connection was lost or made again, or Redis was flushed.
    public var l1Flushes = 0
    /// True while the invalidation connection is up (L2 entries are then kept in L1).
    public var invalidationConnected = false

    public init() {}
}

/// The response cache's store for replicas that share Redis: L1 is this process's `MemoryLRUStore`,
/// L2 is one Redis key per entry.
///
/// - Lookup: L1 (with its immediate hits), then L2. An L2 hit fills L1 while the invalidation
///   connection is up. Store writes both (`SET ... PX <end of the stale window>`).
/// - Invalidation: a `RedisInvalidationListener` (`CLIENT TRACKING ... BCAST PREFIX <keyPrefix>c:`)
///   drops an L1 entry as soon as Redis reports that another replica wrote its key; all of L1 is
///   dropped when that connection is lost and again when it is back. See `SharedKeyTracker`.
/// - Loads across replicas (`beginLoad`): `SET <keyPrefix>l:<key> <token> NX PX <lockTTL>`; the
///   holder loads, stores, then deletes the lock if it still holds it. The others wait for the
///   entry (woken by its invalidation report, or by polling from 2 ms doubling to 64 ms), at most
///   `maximumLockWait`, then load themselves. A lock whose holder died lapses after `lockTTL`.
/// - Redis slow or down: every call has the client's deadline; any failure makes the call a miss
///   (lookup) or a local load (`beginLoad`), never an error, so the cache runs L1-only with
///   stale-if-error until Redis answers again, and then shares again by itself.
///
/// Keys are used exactly as given: they already carry the credential identity, so replicas share
/// an entry exactly when one process would.
public final class TieredCacheStore: CacheStore {
    public let l1: MemoryLRUStore
    public let redis: RedisClient
    public let settings: SharedCacheSettings
    private let listener: RedisInvalidationListener
    private let tracker: SharedKeyTracker
    private let now: @Sendable () -> UInt64
    private let entryPrefix: [UInt8]
    private let lockPrefix: [UInt8]
    private let counters = SharedCacheCounters()
    /// Runs in `beginLoad` between the read that finds no entry under another replica's lock and
    /// the wait for its report: lets a test deliver the report exactly there.
    private let beforeWaiting: @Sendable () async -> Void

    private static let readScript = RedisScript(
        library: "gateway_cache_read_v1", function: "gateway_cache_read_v1",
        body: """
            local value = redis.call('GET', keys[1])
            if not value then return false end
            return {value, redis.call('PTTL', keys[1])}
            """)
    private static let unlockScript = RedisScript(
        library: "gateway_cache_unlock_v1", function: "gateway_cache_unlock_v1",
        body: """
            if redis.call('GET', keys[1]) == args[1] then return redis.call('DEL', keys[1]) end
            return 0
            """)

    /// - Parameters:
    ///   - redis: the data connection (shared with other users of Redis is fine); its loop also runs
    ///     the invalidation listener, and its configuration is the listener's unless given.
    ///   - now: monotonic nanoseconds; the clock of `l1` and of the `ResponseCache` in front.
    public convenience init(
        l1: MemoryLRUStore,
        redis: RedisClient,
        settings: SharedCacheSettings,
        listenerConfiguration: RedisClientConfiguration? = nil,
        now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds
    ) {
        self.init(
            l1: l1, redis: redis, settings: settings, listenerConfiguration: listenerConfiguration, now: now, beforeWaiting: {})
    }

    init(
        l1: MemoryLRUStore,
        redis: RedisClient,
        settings: SharedCacheSettings,
        listenerConfiguration: RedisClientConfiguration?,
        now: @escaping @Sendable () -> UInt64,
        beforeWaiting: @escaping @Sendable () async -> Void
    ) {
        self.l1 = l1
        self.redis = redis
        self.settings = settings
        self.now = now
        self.beforeWaiting = beforeWaiting
        entryPrefix = Array((settings.keyPrefix + "c:").utf8)
        lockPrefix = Array((settings.keyPrefix + "l:").utf8)
        let tracker = SharedKeyTracker(l1: l1, loop: redis.loop, entryPrefix: entryPrefix)
        self.tracker = tracker
        listener = RedisInvalidationListener(
            configuration: listenerConfiguration ?? redis.configuration, prefixes: [entryPrefix], loop: redis.loop
        ) { invalidation in
            tracker.handle(invalidation)
        }
        // Also told the mode at registration, in case the listener connected before.
        listener.onModeChange { mode, _ in
            if mode == .connected { tracker.listenerConnected() }
        }
    }

    /// Stops the invalidation listener (the data client belongs to the caller).
    public func shutdown() async {
        await listener.shutdown()
    }

    public func sharedStatistics() -> SharedCacheStatistics {
        var snapshot = counters.snapshot()
        snapshot.invalidationReports = tracker.appliedReports.load(ordering: .relaxed)
        snapshot.ownWriteReports = tracker.ownWriteReports.load(ordering: .relaxed)
        snapshot.l1Flushes = tracker.flushes.load(ordering: .relaxed)
        snapshot.invalidationConnected = tracker.isConnected
        return snapshot
    }

    // MARK: CacheStore

    /// An L1 hit is answered on the caller's thread without suspending; only an L1 miss waits for
    /// Redis.
    public nonisolated(nonsending) func lookup(_ key: String) async -> CachedEntry? {
        if let entry = l1.lookup(key) { return entry }
        return await readShared(key)
    }

    public func store(_ key: String, entry: CachedEntry) async {
        let instant = now()
        guard instant < entry.staleUntil,
              let envelope = SharedCacheEnvelope.encode(
                body: entry.value,
                freshForNanoseconds: entry.freshUntil.subtractingClamped(entry.storedAt),
                staleForNanoseconds: entry.staleUntil.subtractingClamped(entry.storedAt),
                compressionThreshold: settings.compressionThreshold)
        else {
            // Past its stale window (L1 refuses it too) or too large to share: this process only.
            l1.store(key, entry: entry)
            return
        }
        let reported = tracker.storeOwn(key, entry: entry)
        let succeeded: Bool
        do {
            let reply = try await redis.send([
                Array("SET".utf8), entryKey(key), envelope, Array("PX".utf8), Self.milliseconds(entry.staleUntil - instant),
            ])
            succeeded = reply == .status("OK")
            // An error reply (out of memory, a read-only replica): as failed as a lost connection.
            if !succeeded { counters.l2Errors.add(1, ordering: .relaxed) }
        } catch {
            succeeded = false
            counters.failed(error)
        }
        if succeeded {
            counters.stores.add(1, ordering: .relaxed)
        } else {
            if reported { tracker.ownWriteFailed(key) }
        }
    }

    public func remove(_ key: String) async {
        tracker.remove(key)
        do {
            _ = try await redis.send([Array("DEL".utf8), entryKey(key)])
        } catch {
            counters.failed(error)
        }
    }

    public func statistics() async -> CacheStoreStatistics {
        l1.statistics()
    }

    public func beginLoad(_ key: String) async -> LoadPermit {
        let lockKey = lockPrefix + Array(key.utf8)
        // Waiting is measured in real time whatever clock judges freshness (tests drive that one).
        let waitUntil = monotonicNanoseconds().addingClamped(settings.maximumLockWait.saturatingNanoseconds)
        var pollNanoseconds: UInt64 = 2_000_000
        var waited = false
        while !Task.isCancelled {
            let token = Array((String(UInt64.random(in: .min ... .max), radix: 16) + String(UInt64.random(in: .min ... .max), radix: 16)).utf8)
            let reply: RedisReply
            do {
                reply = try await redis.send([
                    Array("SET".utf8), lockKey, token, Array("NX".utf8), Array("PX".utf8),
                    Self.milliseconds(settings.lockTTL.saturatingNanoseconds),
                ], waitPastDeadline: true)  // A lock set late is held: loading without it would load twice.
            } catch {
                counters.failed(error)
                return .load(lock: nil)
            }
            let lock = SharedLoadLock(token: token)
            switch reply {
            case .status("OK"):
                // The previous holder may have stored its entry and released the lock since this
                // replica's lookup missed.
                if let entry = await readShared(key, waitPastDeadline: true), now() < entry.freshUntil {
                    await endLoad(key, lock: lock)
                    counters.coalesced.add(1, ordering: .relaxed)
                    return .loadedElsewhere(entry)
                }
                return .load(lock: lock)
            case .null:
                if !waited {
                    waited = true
                    counters.lockWaits.add(1, ordering: .relaxed)
                }
                // Expected before the read: the holder's entry and its report may land between the
                // read that misses it and the wait, and would then wake no one.
                let change = tracker.expectChange(of: key)
                if let entry = await readShared(key, waitPastDeadline: true), now() < entry.freshUntil {
                    tracker.forget(change)
                    counters.coalesced.add(1, ordering: .relaxed)
                    return .loadedElsewhere(entry)
                }
                await beforeWaiting()
                let instant = monotonicNanoseconds()
                guard instant < waitUntil else {
                    tracker.forget(change)
                    return .load(lock: nil)
                }
                await tracker.wait(change, atMost: min(pollNanoseconds, waitUntil - instant))
                pollNanoseconds = min(pollNanoseconds * 2, 64_000_000)
            default:
                counters.l2Errors.add(1, ordering: .relaxed)
                return .load(lock: nil)
            }
        }
        return .load(lock: nil)
    }

    public func endLoad(_ key: String, lock: SharedLoadLock) async {
        do {
            _ = try await Self.unlockScript.run(on: redis, keys: [lockPrefix + Array(key.utf8)], arguments: [lock.token])
        } catch {
            // The lock lapses by its PX.
            counters.failed(error)
        }
    }

    // MARK: L2

    private func entryKey(_ key: String) -> [UInt8] {
        entryPrefix + Array(key.utf8)
    }

    /// - Parameter waitPastDeadline: for the reads that decide whether this replica calls the
    ///   upstream itself (under or beside another's lock): a read that is merely late must not
    ///   become a second upstream call.
    private func readShared(_ key: String, waitPastDeadline: Bool = false) async -> CachedEntry? {
        let start = tracker.beginRead(key)
        var entry: CachedEntry?
        do {
            let reply = try await Self.readScript.run(on: redis, keys: [entryKey(key)], arguments: [], waitPastDeadline: waitPastDeadline)
            entry = decodeEntry(reply)
        } catch {
            counters.failed(error)
        }
        tracker.finishRead(key, startedAt: start, entry: entry)
        return entry
    }

    /// The entry in this process's clock, from the envelope and what is left of its TTL.
    private func decodeEntry(_ reply: RedisReply) -> CachedEntry? {
        switch reply {
        case .null:
            counters.l2Misses.add(1, ordering: .relaxed)
            return nil
        case .array(let parts):
            guard parts.count == 2, case .bulk(let envelope) = parts[0], case .integer(let remainingMilliseconds) = parts[1],
                  remainingMilliseconds > 0, let decoded = SharedCacheEnvelope.decode(envelope)
            else { break }
            let instant = now()
            let (remaining, overflow) = UInt64(remainingMilliseconds).multipliedReportingOverflow(by: 1_000_000)
            let staleUntil = instant.addingClamped(overflow ? .max : remaining)
            let storedAt = instant.subtractingClamped(decoded.staleForNanoseconds.subtractingClamped(overflow ? .max : remaining))
            counters.l2Hits.add(1, ordering: .relaxed)
            return CachedEntry(
                value: decoded.body, storedAt: storedAt,
                freshUntil: min(storedAt.addingClamped(decoded.freshForNanoseconds), staleUntil), staleUntil: staleUntil)
        case .error:
            counters.l2Errors.add(1, ordering: .relaxed)
            return nil
        default:
            break
        }
        counters.l2Corrupt.add(1, ordering: .relaxed)
        counters.l2Misses.add(1, ordering: .relaxed)
        return nil
    }

    /// Whole milliseconds, rounded up so that Redis keeps an entry at least as long as its window.
    static func milliseconds(_ nanoseconds: UInt64) -> [UInt8] {
        let (whole, remainder) = nanoseconds.quotientAndRemainder(dividingBy: 1_000_000)
        return Array(String(max(1, remainder > 0 ? whole + 1 : whole)).utf8)
    }
}

private final class SharedCacheCounters: Sendable {
    let l2Hits = Atomic<Int>(0)
    let l2Misses = Atomic<Int>(0)
    let l2Corrupt = Atomic<Int>(0)
    let l2Errors = Atomic<Int>(0)
    let stores = Atomic<Int>(0)
    let lockWaits = Atomic<Int>(0)
    let coalesced = Atomic<Int>(0)

    /// A cancelled call is the caller leaving, not Redis failing.
    func failed(_ error: RedisError) {
        if error != .cancelled { l2Errors.add(1, ordering: .relaxed) }
    }

    func snapshot() -> SharedCacheStatistics {
        var snapshot = SharedCacheStatistics()
        snapshot.l2Hits = l2Hits.load(ordering: .relaxed)
        snapshot.l2Misses = l2Misses.load(ordering: .relaxed)
        snapshot.l2Corrupt = l2Corrupt.load(ordering: .relaxed)
        snapshot.l2Errors = l2Errors.load(ordering: .relaxed)
        snapshot.l2Stores = stores.load(ordering: .relaxed)
        snapshot.lockWaits = lockWaits.load(ordering: .relaxed)
        snapshot.loadsCoalescedAcrossReplicas = coalesced.load(ordering: .relaxed)
        return snapshot
    }
}
