#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One cached value and the instants (monotonic nanoseconds of the cache's clock) that bound its use.
///
/// Windows are half-open: the entry is fresh while `now < freshUntil` and may be served after an upstream
/// failure while `now < staleUntil`; `freshUntil` and `staleUntil` are the first instants at which it no
/// longer is / may. `storedAt <= freshUntil <= staleUntil`.
public struct CachedEntry: Sendable, Hashable {
    public var value: [UInt8]
    public var storedAt: UInt64
    public var freshUntil: UInt64
    public var staleUntil: UInt64

    public init(value: [UInt8], storedAt: UInt64, freshUntil: UInt64, staleUntil: UInt64) {
        self.value = value
        self.storedAt = storedAt
        self.freshUntil = freshUntil
        self.staleUntil = staleUntil
    }
}

/// Counters of a byte-level store. `hits` counts lookups that found a live entry (fresh or stale);
/// `evictions` counts entries pushed out for space, `expirations` entries dropped past `staleUntil`,
/// `oversizeRejections` values too large to store at all.
public struct CacheStoreStatistics: Sendable, Hashable {
    public var hits = 0
    public var misses = 0
    public var evictions = 0
    public var expirations = 0
    public var oversizeRejections = 0
    public var entries = 0
    public var bytesInUse = 0

    public init() {}
}

/// A byte-level key-value store with the freshness bookkeeping the response cache needs.
///
/// Implementations decide what to keep; the contract is only that `lookup` never returns an entry at or
/// past its `staleUntil` and that `store` replaces any previous entry under the key. A shared store
/// (e.g. Redis) would translate `staleUntil` into a TTL relative to its own clock and keep `storedAt`
/// and `freshUntil` as offsets in the stored record.
///
/// `lookup` runs on its caller's executor, so an in-process store answers a cache hit without
/// suspending or leaving the caller's thread (the event loop); a shared store suspends for its
/// round trip.
public protocol CacheStore: Sendable {
    nonisolated(nonsending) func lookup(_ key: String) async -> CachedEntry?
    func store(_ key: String, entry: CachedEntry) async
    func remove(_ key: String) async
    func statistics() async -> CacheStoreStatistics

    /// Called by `ResponseCache` right before it loads `key` (after its own coalescing, so once per
    /// process and key at a time). A store shared by several processes may have another process load
    /// it and hand back that process's fresh entry. Never fails: when it cannot coordinate, it answers
    /// `.load(lock: nil)`.
    func beginLoad(_ key: String) async -> LoadPermit

    /// Called after a load that `beginLoad` allowed with a lock, once its entry is stored (or the
    /// load failed), so other processes stop waiting for it.
    func endLoad(_ key: String, lock: SharedLoadLock) async
}

/// What `CacheStore.beginLoad` decides.
public enum LoadPermit: Sendable, Equatable {
    /// Load here. With a lock, other processes wait for this load; pass it to `endLoad`.
    case load(lock: SharedLoadLock?)
    /// Another process loaded the key meanwhile: this entry is fresh, do not load.
    case loadedElsewhere(CachedEntry)
}

/// Proof of holding a shared store's load lock on one key (its token, so that only the holder
/// releases it).
public struct SharedLoadLock: Sendable, Hashable {
    public let token: [UInt8]

    public init(token: [UInt8]) { self.token = token }
}

extension CacheStore {
    /// A store of one process has no one to coordinate with.
    public func beginLoad(_ key: String) async -> LoadPermit { .load(lock: nil) }

    public func endLoad(_ key: String, lock: SharedLoadLock) async {}
}

