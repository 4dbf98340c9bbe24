public import GatewayEventLoop
import Synchronization

/// What a loader hands back: the value and how long it stays fresh (the loader can read the body to
/// decide, e.g. a finished execution lives longer than a running one).
public struct CacheLoad: Sendable {
    public var value: [UInt8]
    public var ttlNanoseconds: UInt64

    public init(value: [UInt8], ttlNanoseconds: UInt64) {
        self.value = value
        self.ttlNanoseconds = ttlNanoseconds
    }
}

public enum StaleReason: Sendable, Hashable {
    /// The load threw; the entry was within its stale-if-error window.
    case loadFailed
    /// The caller chose not to load at all (`staleValue(key:)`), e.g. while the upstream is paused.
    case loadSkipped
}

public enum CacheOutcome: Sendable, Hashable {
    /// Served from a fresh entry.
    case hit
    /// This caller's request started the load and got its result.
    case miss
    /// This caller joined a load another caller (of this process, or of another process sharing
    /// the store) had started and got its result.
    case coalesced
    /// Served from an expired entry still inside its stale window.
    case stale(StaleReason)
}

public struct CacheResult: Sendable {
    public var value: [UInt8]
    public var outcome: CacheOutcome
    /// Nanoseconds since the value was stored (0 for a value just loaded).
    public var ageNanoseconds: UInt64
    /// When the value stops being fresh, in the cache's clock: in the past for a stale value.
    /// Whatever is derived from the value (a rendered page) may be kept until then and no longer.
    public var freshUntil: UInt64
    /// For `.stale(.loadFailed)`: the error the load threw, unchanged.
    public var staleCause: (any Error)?

    public init(value: [UInt8], outcome: CacheOutcome, ageNanoseconds: UInt64, freshUntil: UInt64 = 0, staleCause: (any Error)? = nil) {
        self.value = value
        self.outcome = outcome
        self.ageNanoseconds = ageNanoseconds
        self.freshUntil = freshUntil
        self.staleCause = staleCause
    }
}

/// Counters of the response cache plus the store's occupancy, for export as metrics.
/// `misses` counts loads started; `coalescedWaiters` callers that joined a load instead of starting one.
public struct CacheStatistics: Sendable, Hashable {
    public var hits = 0
    public var misses = 0
    public var staleServes = 0
    public var coalescedWaiters = 0
    public var evictions = 0
    public var entries = 0
    public var bytesInUse = 0

    public init() {}
}

/// The caching policy in front of any `CacheStore`: freshness, request coalescing and stale-if-error.
///
/// - A fresh entry is served as `.hit` unless the caller bypasses the cache (`Cache-Control: no-cache`).
/// - Otherwise all concurrent callers for one key share one load. The caller that started it sees
///   `.miss`, every caller that joined sees `.coalesced`, all with the same value. A bypassing caller
///   also joins a load already in flight: that load started no earlier than its request. A caller
///   that missed just as a load stored the key gets that entry as `.hit` instead of loading again.
/// - When the load throws and the store still holds the key inside its stale window, each waiting
///   caller that did not bypass the cache gets that entry as `.stale(.loadFailed)` (with the error in
///   `staleCause`); every other waiter gets the load's error, unchanged.
/// - A cancelled caller stops waiting at once with `CancellationError`; the load runs on for the others
///   and still fills the cache. When the last caller waiting for a load leaves, the load itself is
///   cancelled (its upstream transfer stops): nobody is left to pay for it, and a caller arriving
///   later starts a load of its own.
/// - Before loading, the store may coordinate with other processes sharing it (`beginLoad`): a
///   shared store lets one process load while the others wait for its entry, which their callers
///   get as `.coalesced`. A load started by a bypassing caller does not coordinate.
///
/// Keys must separate everything that may not be shared, notably the upstream credential.
public final class ResponseCache: Sendable {
    public let store: any CacheStore
    private let now: @Sendable () -> UInt64
    private let loads = Mutex<[String: InFlightLoad]>([:])
    private let nextWaiterID = Atomic<UInt64>(0)
    private let nextLoadID = Atomic<UInt64>(0)
    private let hits = Atomic<Int>(0)
    private let misses = Atomic<Int>(0)
    private let staleServes = Atomic<Int>(0)
    private let coalescedWaiters = Atomic<Int>(0)
    /// Loads that have ended (delivered, or found abandoned at delivery), counted under the lock of
    /// the in-flight map: a conservative hint. A caller that saw the same count before its lookup
    /// and at its registration knows no load of this process stored anything in between; any
    /// change, for any key, makes it look again.
    private let endedLoads = Atomic<UInt64>(0)
    /// Runs in `fetch` between the lookup that misses and the registration among the loads in
    /// flight: lets a test finish another load exactly there.
    private let beforeRegistering: @Sendable () async -> Void

    /// - Parameter now: monotonic nanoseconds; must be the clock `store` judges staleness with.
    public convenience init(store: any CacheStore, now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        self.init(store: store, now: now, beforeRegistering: {})
    }

    init(store: any CacheStore, now: @escaping @Sendable () -> UInt64, beforeRegistering: @escaping @Sendable () async -> Void) {
        self.store = store
        self.now = now
        self.beforeRegistering = beforeRegistering
    }

    /// - Parameters:
    ///   - staleIfErrorNanoseconds: how long after its freshness ends a value stored by this call's load
    ///     may still be served when a later load fails.
    ///   - bypassCache: skip a fresh entry and do not fall back to a stale one.
    ///   - load: fetches the value; its error reaches the callers unchanged.
    public func fetch(
        key: String,
        staleIfErrorNanoseconds: UInt64,
        bypassCache: Bool = false,
        load: @escaping @Sendable () async throws -> CacheLoad
    ) async throws -> CacheResult {
        let endedLoadsBeforeLookup = endedLoads.load(ordering: .acquiring)
        if !bypassCache, let entry = await store.lookup(key) {
            let instant = now()
            if instant < entry.freshUntil {
                hits.add(1, ordering: .relaxed)
                return CacheResult(value: entry.value, outcome: .hit, ageNanoseconds: age(since: entry.storedAt, at: instant), freshUntil: entry.freshUntil)
            }
        }
        await beforeRegistering()
        return try await awaitSharedLoad(
            key: key, staleIfErrorNanoseconds: staleIfErrorNanoseconds, bypassCache: bypassCache,
            endedLoadsBeforeLookup: endedLoadsBeforeLookup, load: load)
    }

    /// The stored value without attempting a load, for a caller that knows a load cannot succeed now
    /// (the upstream asked to be left alone with Retry-After): `.hit` if still fresh,
    /// `.stale(.loadSkipped)` if inside its stale window, else `nil`.
    public func staleValue(key: String) async -> CacheResult? {
        guard let entry = await store.lookup(key) else { return nil }
        let instant = now()
        if instant < entry.freshUntil {
            hits.add(1, ordering: .relaxed)
            return CacheResult(value: entry.value, outcome: .hit, ageNanoseconds: age(since: entry.storedAt, at: instant), freshUntil: entry.freshUntil)
        }
        guard instant < entry.staleUntil else { return nil }
        staleServes.add(1, ordering: .relaxed)
        return CacheResult(
            value: entry.value, outcome: .stale(.loadSkipped), ageNanoseconds: age(since: entry.storedAt, at: instant),
            freshUntil: entry.freshUntil)
    }

    public func statistics() async -> CacheStatistics {
        let storeStatistics = await store.statistics()
        var snapshot = CacheStatistics()
        snapshot.hits = hits.load(ordering: .relaxed)
        snapshot.misses = misses.load(ordering: .relaxed)
        snapshot.staleServes = staleServes.load(ordering: .relaxed)
        snapshot.coalescedWaiters = coalescedWaiters.load(ordering: .relaxed)
        snapshot.evictions = storeStatistics.evictions
        snapshot.entries = storeStatistics.entries
        snapshot.bytesInUse = storeStatistics.bytesInUse
        return snapshot
    }

    // MARK: Coalescing

    private enum Role { case starter(loadID: UInt64, aLoadEndedSinceTheLookup: Bool), joiner, cancelled }

    private func awaitSharedLoad(
        key: String,
        staleIfErrorNanoseconds: UInt64,
        bypassCache: Bool,
        endedLoadsBeforeLookup: UInt64,
        load: @escaping @Sendable () async throws -> CacheLoad
    ) async throws -> CacheResult {
        let waiterID = nextWaiterID.add(1, ordering: .relaxed).newValue
        var role = Role.cancelled
        let delivery = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<LoadDelivery?, Never>) in
                // Checking cancellation under the lock closes the race with `onCancel`, which takes the
                // same lock: either it sees this waiter registered, or this check sees the cancellation.
                role = loads.withLock { loads in
                    if Task.isCancelled { return .cancelled }
                    if loads[key] != nil {
                        loads[key]?.waiters[waiterID] = continuation
                        return .joiner
                    }
                    let loadID = nextLoadID.add(1, ordering: .relaxed).newValue
                    loads[key] = InFlightLoad(id: loadID, waiters: [waiterID: continuation])
                    return .starter(loadID: loadID, aLoadEndedSinceTheLookup: endedLoads.load(ordering: .relaxed) != endedLoadsBeforeLookup)
                }
                switch role {
                case .cancelled:
                    continuation.resume(returning: nil)
                case .joiner:
                    coalescedWaiters.add(1, ordering: .relaxed)
                case .starter(let loadID, let aLoadEndedSinceTheLookup):
                    misses.add(1, ordering: .relaxed)
                    // Unstructured so that cancelling the starter does not cancel the others' load;
                    // it still inherits task-local values (request ids for logs).
                    let task = Task {
                        await self.runLoad(
                            key: key, loadID: loadID, staleIfErrorNanoseconds: staleIfErrorNanoseconds, coordinate: !bypassCache,
                            lookUpAgain: !bypassCache && aLoadEndedSinceTheLookup, load: load)
                    }
                    let abandoned = loads.withLock { loads -> Bool in
                        guard loads[key]?.id == loadID else { return false }  // finished already
                        if loads[key]?.waiters.isEmpty == true {
                            loads[key] = nil
                            return true
                        }
                        loads[key]?.task = task
                        return false
                    }
                    if abandoned { task.cancel() }
                }
            }
        } onCancel: {
            let (continuation, abandonedLoad) = loads.withLock { loads -> (CheckedContinuation<LoadDelivery?, Never>?, Task<Void, Never>?) in
                guard let continuation = loads[key]?.waiters.removeValue(forKey: waiterID) else { return (nil, nil) }
                guard loads[key]?.waiters.isEmpty == true else { return (continuation, nil) }
                // The last waiter left. Without its task (not stored yet) the starter cancels it.
                let task = loads[key]?.task
                if task != nil { loads[key] = nil }
                return (continuation, task)
            }
            abandonedLoad?.cancel()
            continuation?.resume(returning: nil)
        }

        switch delivery {
        case nil:
            throw CancellationError()
        case .loaded(let value, let storedAt, let freshUntil, let source)?:
            let outcome: CacheOutcome =
                switch (role, source) {
                case (.starter, .loadedHere): .miss
                case (.starter, .alreadyStored): .hit
                default: .coalesced
                }
            return CacheResult(value: value, outcome: outcome, ageNanoseconds: age(since: storedAt, at: now()), freshUntil: freshUntil)
        case .failed(let error, let staleEntry)?:
            if !bypassCache, let entry = staleEntry {
                let instant = now()
                if instant < entry.staleUntil {
                    staleServes.add(1, ordering: .relaxed)
                    return CacheResult(
                        value: entry.value, outcome: .stale(.loadFailed),
                        ageNanoseconds: age(since: entry.storedAt, at: instant), freshUntil: entry.freshUntil, staleCause: error)
                }
            }
            throw error
        }
    }

    /// - Parameter coordinate: ask the store first; not for a caller that bypasses the cache, to
    ///   whom another process's entry, possibly stored before its request, is not an answer.
    private func runLoad(
        key: String, loadID: UInt64, staleIfErrorNanoseconds: UInt64, coordinate: Bool, lookUpAgain: Bool,
        load: @Sendable () async throws -> CacheLoad
    ) async {
        // A load that ended between the starter's miss and its registration had left the loads in
        // flight, so the starter started this one. That load stored its entry before it left (in
        // `deliver`, under the lock the registration takes), so a lookup made after the
        // registration finds it: the key just stored costs no second upstream call. Only then: on
        // every other miss (no load ended meanwhile) a second lookup would find nothing new, and for
        // a store shared through Redis it would cost a round trip.
        if lookUpAgain, let entry = await store.lookup(key), now() < entry.freshUntil {
            misses.subtract(1, ordering: .relaxed)
            hits.add(1, ordering: .relaxed)
            deliver(.loaded(value: entry.value, storedAt: entry.storedAt, freshUntil: entry.freshUntil, source: .alreadyStored), key: key, loadID: loadID)
            return
        }
        let delivery: LoadDelivery
        var sharedLock: SharedLoadLock?
        switch coordinate ? await store.beginLoad(key) : .load(lock: nil) {
        case .loadedElsewhere(let entry):
            // Another process loaded it while this one waited: no load started here after all, and
            // the caller that would have started it joined that other load.
            misses.subtract(1, ordering: .relaxed)
            coalescedWaiters.add(1, ordering: .relaxed)
            deliver(.loaded(value: entry.value, storedAt: entry.storedAt, freshUntil: entry.freshUntil, source: .loadedElsewhere), key: key, loadID: loadID)
            return
        case .load(let lock):
            sharedLock = lock
        }
        do {
            let loaded = try await load()
            let storedAt = now()
            let freshUntil = storedAt.addingClamped(loaded.ttlNanoseconds)
            let entry = CachedEntry(
                value: loaded.value, storedAt: storedAt, freshUntil: freshUntil,
                staleUntil: freshUntil.addingClamped(staleIfErrorNanoseconds))
            // Stored before the waiters are released, so a caller arriving after this load finished
            // finds the entry instead of starting another load. An abandoned load stores nothing: a
            // newer load may already have stored a later answer.
            if loads.withLock({ $0[key]?.id == loadID }) { await store.store(key, entry: entry) }
            delivery = .loaded(value: loaded.value, storedAt: storedAt, freshUntil: freshUntil, source: .loadedHere)
        } catch {
            delivery = .failed(error, staleEntry: await store.lookup(key))
        }
        deliver(delivery, key: key, loadID: loadID)
        // After the callers have their answer: other processes learn of the stored entry without the
        // lock (the store tells them), and release only spares them the wait after a failed load.
        if let sharedLock { await store.endLoad(key, lock: sharedLock) }
    }

    private func deliver(_ delivery: LoadDelivery, key: String, loadID: UInt64) {
        // An abandoned load's entry is gone, or belongs to a newer load by now: it has no one to tell.
        let waiters = loads.withLock { loads -> [UInt64: CheckedContinuation<LoadDelivery?, Never>] in
            // Counted before the check: an abandoned load may still have stored its entry.
            endedLoads.add(1, ordering: .releasing)
            guard loads[key]?.id == loadID else { return [:] }
            return loads.removeValue(forKey: key)?.waiters ?? [:]
        }
        for continuation in waiters.values {
            continuation.resume(returning: delivery)
        }
    }

    private func age(since storedAt: UInt64, at instant: UInt64) -> UInt64 {
        instant >= storedAt ? instant - storedAt : 0
    }
}

private struct InFlightLoad {
    /// Tells this load from a later one for the same key, once this one was abandoned.
    let id: UInt64
    var waiters: [UInt64: CheckedContinuation<LoadDelivery?, Never>]
    /// Set by the starter right after it starts the load; cancelled when the last waiter leaves.
    var task: Task<Void, Never>?
}

private enum LoadDelivery: Sendable {
    enum Source: Sendable {
        /// This load called the upstream.
        case loadedHere
        /// Another process loaded it while this one waited (`beginLoad`).
        case loadedElsewhere
        /// A load that ended just before this one started had stored it.
        case alreadyStored
    }

    case loaded(value: [UInt8], storedAt: UInt64, freshUntil: UInt64, source: Source)
    case failed(any Error, staleEntry: CachedEntry?)
}

