import GatewayEventLoop
import GatewayRedis
import Synchronization

/// Keeps a `TieredCacheStore`'s L1 consistent with Redis: drops an L1 entry when Redis reports its
/// key changed, drops all of L1 when the reports may have been missed, refuses to fill L1 from an L2
/// read that a report overtook, and wakes the loads waiting for another replica's entry.
///
/// Every L1 change goes through here under one lock, so a fill and a report for the same key are
/// ordered: a report that arrives while an L2 read is in flight prevents that read's fill.
///
/// The replica's own writes: tracking is on the listener's connection (`BCAST`), so `NOLOOP` would
/// only skip writes made on that connection, and writes go through the data connection. Instead each
/// own write that the listener will report is counted; the first report for the key then consumes
/// the count instead of dropping the entry just written. Reports of a key arrive in the order Redis
/// applied the writes, so with another replica's write in between, the later report still drops the
/// entry (possibly one report early: a needless miss, never a stale entry).
final class SharedKeyTracker: Sendable {
    private let l1: MemoryLRUStore
    private let loop: EventLoop
    private let entryPrefix: [UInt8]
    private let state = Mutex(State())
    private let nextWaiterID = Atomic<UInt64>(0)
    let appliedReports = Atomic<Int>(0)
    let ownWriteReports = Atomic<Int>(0)
    let flushes = Atomic<Int>(0)

    private struct State {
        /// Reports are trusted (and L1 may hold entries read from L2) only while the listener is connected.
        var connected = false
        /// Bumped on every report; a read remembers its value at the start.
        var sequence: UInt64 = 0
        var lastFlush: UInt64 = 0
        var readsInFlight: [String: ReadWatch] = [:]
        var unmatchedOwnWrites: [String: Int] = [:]
        var expectations: [String: [UInt64: Expectation]] = [:]

        /// `key` changed (or may have): wakes the waits on it, and the tickets not yet waited on
        /// remember it.
        mutating func changed(_ key: String) -> [CheckedContinuation<Void, Never>] {
            guard var tickets = expectations[key] else { return [] }
            var woken: [CheckedContinuation<Void, Never>] = []
            for (id, expectation) in tickets {
                if case .waiting(let continuation) = expectation {
                    woken.append(continuation)
                    tickets[id] = nil
                } else {
                    tickets[id] = .changed
                }
            }
            expectations[key] = tickets.isEmpty ? nil : tickets
            return woken
        }

        /// Removes `ticket`; its continuation if it was waiting.
        mutating func end(_ ticket: ChangeTicket) -> CheckedContinuation<Void, Never>? {
            let expectation = expectations[ticket.key]?.removeValue(forKey: ticket.id)
            if expectations[ticket.key]?.isEmpty == true { expectations[ticket.key] = nil }
            if case .waiting(let continuation) = expectation { return continuation }
            return nil
        }
    }

    private enum Expectation {
        /// Taken, not yet waited on.
        case expecting
        /// The key changed before the wait began: the wait returns at once.
        case changed
        /// Resumed by the next change, the wait's bound or its cancellation, whichever comes first.
        case waiting(CheckedContinuation<Void, Never>)
    }

    private struct ReadWatch {
        var readers: Int
        var lastReport: UInt64
    }

    init(l1: MemoryLRUStore, loop: EventLoop, entryPrefix: [UInt8]) {
        self.l1 = l1
        self.loop = loop
        self.entryPrefix = entryPrefix
    }

    var isConnected: Bool { state.withLock { $0.connected } }

    // MARK: Reports (listener, loop thread)

    func handle(_ invalidation: RedisInvalidation) {
        switch invalidation {
        case .keys(let redisKeys):
            keysChanged(redisKeys.compactMap(cacheKey(fromRedisKey:)))
        case .everything:
            flush(connected: nil)
        case .connectionLost:
            flush(connected: false)
        }
    }

    /// The listener connected: what L1 holds may have changed in Redis while it was not.
    func listenerConnected() {
        flush(connected: true)
    }

    private func cacheKey(fromRedisKey redisKey: [UInt8]) -> String? {
        guard redisKey.count >= entryPrefix.count, redisKey.starts(with: entryPrefix) else { return nil }
        return String(decoding: redisKey[entryPrefix.count...], as: UTF8.self)
    }

    private func keysChanged(_ keys: [String]) {
        var woken: [CheckedContinuation<Void, Never>] = []
        let (dropped, own) = state.withLock { state -> (Int, Int) in
            var dropped = 0
            var own = 0
            for key in keys {
                state.sequence += 1
                state.readsInFlight[key]?.lastReport = state.sequence
                woken += state.changed(key)
                if let unmatched = state.unmatchedOwnWrites[key] {
                    state.unmatchedOwnWrites[key] = unmatched > 1 ? unmatched - 1 : nil
                    own += 1
                } else {
                    l1.remove(key)
                    dropped += 1
                }
            }
            return (dropped, own)
        }
        appliedReports.add(dropped, ordering: .relaxed)
        ownWriteReports.add(own, ordering: .relaxed)
        for continuation in woken { continuation.resume() }
    }

    /// Drops all of L1; `connected` sets the listener's state (nil leaves it).
    private func flush(connected: Bool?) {
        let woken = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            if let connected { state.connected = connected }
            state.sequence += 1
            state.lastFlush = state.sequence
            state.unmatchedOwnWrites = [:]
            l1.removeAll()
            return Array(state.expectations.keys).flatMap { state.changed($0) }
        }
        flushes.add(1, ordering: .relaxed)
        for continuation in woken { continuation.resume() }
    }

    // MARK: Reads and writes (any task)

    /// Call before reading `key` from L2; pass the result to `finishRead`.
    func beginRead(_ key: String) -> UInt64 {
        state.withLock { state in
            state.readsInFlight[key, default: ReadWatch(readers: 0, lastReport: 0)].readers += 1
            return state.sequence
        }
    }

    /// Fills L1 with `entry` unless a report could have made it out of date since `beginRead`.
    func finishRead(_ key: String, startedAt start: UInt64, entry: CachedEntry?) {
        state.withLock { state in
            guard let watch = state.readsInFlight[key] else { return }
            state.readsInFlight[key] = watch.readers > 1 ? ReadWatch(readers: watch.readers - 1, lastReport: watch.lastReport) : nil
            guard let entry, state.connected, state.lastFlush <= start, watch.lastReport <= start else { return }
            l1.store(key, entry: entry)
        }
    }

    /// Stores this replica's own entry in L1 before it is written to L2. True when the listener will
    /// report that write (pass it to `ownWriteFailed` if the write fails).
    func storeOwn(_ key: String, entry: CachedEntry) -> Bool {
        state.withLock { state in
            l1.store(key, entry: entry)
            guard state.connected else { return false }
            state.unmatchedOwnWrites[key, default: 0] += 1
            return true
        }
    }

    /// A counted write failed (it may still have run). If no report consumed its count, none will
    /// come; if one did, that report may have been another replica's, so the L1 entry goes.
    func ownWriteFailed(_ key: String) {
        state.withLock { state in
            if let unmatched = state.unmatchedOwnWrites[key] {
                state.unmatchedOwnWrites[key] = unmatched > 1 ? unmatched - 1 : nil
            } else {
                l1.remove(key)
            }
        }
    }

    func remove(_ key: String) {
        state.withLock { _ in l1.remove(key) }
    }

    // MARK: Waiting for another replica's entry

    /// One load's claim on the next report of a key.
    struct ChangeTicket: Sendable {
        let key: String
        let id: UInt64
    }

    /// Call before the read that finds `key` missing, then `wait` on the ticket (or `forget` it): a
    /// report that lands between that read and the wait is then not lost, and the wait returns at
    /// once instead of sleeping its whole bound.
    func expectChange(of key: String) -> ChangeTicket {
        let ticket = ChangeTicket(key: key, id: nextWaiterID.add(1, ordering: .relaxed).newValue)
        state.withLock { $0.expectations[key, default: [:]][ticket.id] = .expecting }
        return ticket
    }

    /// Returns when Redis reports the ticket's key changed (or reported it since `expectChange`),
    /// after `nanoseconds`, or on cancellation, whichever comes first. Ends the ticket.
    func wait(_ ticket: ChangeTicket, atMost nanoseconds: UInt64) async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                // Checking under the lock that `onCancel` takes closes the race with cancellation.
                let waits = state.withLock { state -> Bool in
                    guard !Task.isCancelled, case .expecting = state.expectations[ticket.key]?[ticket.id] else {
                        _ = state.end(ticket)
                        return false
                    }
                    state.expectations[ticket.key, default: [:]][ticket.id] = .waiting(continuation)
                    return true
                }
                guard waits else {
                    continuation.resume()
                    return
                }
                let deadline = monotonicNanoseconds().addingClamped(nanoseconds)
                let loop = self.loop
                // Not cancelled when woken earlier: it then finds nothing to wake.
                loop.execute { loop.scheduleTimer(at: deadline) { self.forget(ticket) } }
            }
        } onCancel: {
            forget(ticket)
        }
    }

    /// Ends `ticket`, waking its wait if there is one.
    func forget(_ ticket: ChangeTicket) {
        let continuation = state.withLock { $0.end(ticket) }
        continuation?.resume()
    }
}
