/// Where replicas keep their indexes together (Redis, with the `redis` section): at most one
/// replica runs a sync step of an index at a time, under a lease with a fencing token, and
/// publishes the result; the others adopt what it published instead of calling the upstream.
///
/// Every method answers without throwing: a store that cannot be reached says `.unavailable` (or
/// nil), and the replica then syncs its own index, as a single node does.
public protocol IndexSharing: Sendable {
    /// How long a lease lasts without renewal: a holder that dies is taken over after this.
    var leaseNanoseconds: UInt64 { get }

    /// The lease of index `key`, unless another replica holds it.
    func acquireLease(_ key: String) async -> LeaseAttempt
    /// Extends a lease still held; false when it lapsed (another replica may hold it now).
    func renewLease(_ lease: IndexLease) async -> Bool
    func releaseLease(_ lease: IndexLease) async

    /// Publishes an index under `lease`. nil when the lease is no longer this replica's (the
    /// fencing token is stale, so a holder that stalled past its lease cannot overwrite its
    /// successor's work) or the store cannot be reached; else the publication's version.
    func publish(_ key: String, _ publication: IndexPublication, lease: IndexLease) async -> UInt64?

    /// The newest publication of `key` if its version is above `version`; nil otherwise, or when
    /// it cannot be read whole.
    func latest(_ key: String, newerThan version: UInt64) async -> IndexPublication?
}

public struct IndexLease: Sendable, Hashable {
    public var key: String
    /// Grows with every acquisition of the key's lease.
    public var token: UInt64

    public init(key: String, token: UInt64) {
        self.key = key
        self.token = token
    }
}

public enum LeaseAttempt: Sendable, Hashable {
    case acquired(IndexLease)
    case heldByAnother
    case unavailable
}

/// One published version of an index: `IndexSnapshot`'s header and segments, and how old the
/// data is.
public struct IndexPublication: Sendable, Equatable {
    public var version: UInt64
    public var header: [UInt8]
    public var segments: [[UInt8]]
    /// Nanoseconds since the index's last head refresh began, as of when the publication was
    /// read (aged with the store's clock, so replicas never compare their own clocks).
    public var ageNanoseconds: UInt64
    /// When that step began, as Unix seconds, for `providers[].asOf`.
    public var refreshedAtUnixSeconds: Int64

    public init(version: UInt64, header: [UInt8], segments: [[UInt8]], ageNanoseconds: UInt64, refreshedAtUnixSeconds: Int64) {
        self.version = version
        self.header = header
        self.segments = segments
        self.ageNanoseconds = ageNanoseconds
        self.refreshedAtUnixSeconds = refreshedAtUnixSeconds
    }
}
