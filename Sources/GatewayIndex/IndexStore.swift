import DequeModule
import GatewayProviders
import Synchronization

/// What the indexes hold and have done since start, for `/metrics`.
public struct IndexStatistics: Sendable, Equatable {
    /// Indexes held now (one per provider and upstream credential identity).
    public var indexes = 0
    public var executions = 0
    /// The estimate of the memory the indexes hold, against `index.maxBytes`.
    public var bytes = 0
    /// Whole indexes dropped to stay within `index.maxBytes`, least recently used first.
    public var evictions = 0
    /// Head refreshes and deeper reads that went upstream, by outcome.
    public var syncs = 0
    public var syncFailures = 0
    /// Versions another replica published that this one adopted instead of syncing (`redis`).
    public var adoptions = 0

    public init() {}
}

/// Every provider index of the gateway, bounded in total by bytes.
///
/// An index belongs to one provider and one upstream credential identity: tenants whose clients
/// carry their own provider credentials never share one. When the estimated bytes of all indexes
/// pass `maxBytes`, whole indexes are dropped, least recently used first (a dropped index is
/// simply built again by the next page that needs it). The index a page is using is never the one
/// dropped for it, so a single index larger than the budget still serves, alone.
public final class IndexStore: Sendable {
    public let maxBytes: Int
    /// Replicas' shared indexes; nil: this process syncs every index itself.
    public let sharing: (any IndexSharing)?
    private let state = Mutex(State())

    private struct State {
        var entries: [String: any AnyIndexEntry] = [:]
        /// Keys, least recently used first.
        var recency = Deque<String>()
        var statistics = IndexStatistics()
    }

    public init(maxBytes: Int, sharing: (any IndexSharing)? = nil) {
        self.maxBytes = maxBytes
        self.sharing = sharing
    }

    /// The index of `provider` for `credentialIdentity`, made with `make` when there is none.
    func entry<Entry: AnyIndexEntry>(provider: String, credentialIdentity: String, make: () -> Entry) -> Entry {
        let key = provider + " " + credentialIdentity
        return state.withLock { state in
            if let existing = state.entries[key] as? Entry {
                if state.recency.last != key, let position = state.recency.firstIndex(of: key) {
                    state.recency.remove(at: position)
                    state.recency.append(key)
                }
                return existing
            }
            let made = make()
            state.entries[key] = made
            state.recency.removeAll { $0 == key }
            state.recency.append(key)
            state.statistics.indexes = state.entries.count
            return made
        }
    }

    /// Called by an entry after its index changed size: recounts, and drops least recently used
    /// indexes other than `keep` while the total is over budget.
    func didChange(keep: any AnyIndexEntry) {
        let dropped: [any AnyIndexEntry] = state.withLock { state in
            var total = state.entries.values.reduce(0) { $0 + $1.footprint.bytes }
            var dropped: [any AnyIndexEntry] = []
            var index = state.recency.startIndex
            while total > maxBytes, index < state.recency.endIndex {
                let key = state.recency[index]
                guard let entry = state.entries[key], entry !== keep else {
                    index += 1
                    continue
                }
                total -= entry.footprint.bytes
                state.entries[key] = nil
                state.recency.remove(at: index)
                state.statistics.evictions += 1
                dropped.append(entry)
            }
            return dropped
        }
        _ = dropped  // released outside the lock
    }

    func recordAdoption() {
        state.withLock { $0.statistics.adoptions += 1 }
    }

    func recordSync(failed: Bool) {
        state.withLock {
            $0.statistics.syncs += 1
            if failed { $0.statistics.syncFailures += 1 }
        }
    }

    public func statistics() -> IndexStatistics {
        let entries = state.withLock { state in (Array(state.entries.values), state.statistics) }
        var statistics = entries.1
        statistics.indexes = entries.0.count
        statistics.executions = 0
        statistics.bytes = 0
        for entry in entries.0 {
            let footprint = entry.footprint
            statistics.executions += footprint.executions
            statistics.bytes += footprint.bytes
        }
        return statistics
    }
}

/// What the store needs of an index entry, whatever its provider type.
protocol AnyIndexEntry: AnyObject, Sendable {
    var footprint: (executions: Int, bytes: Int) { get }
}
