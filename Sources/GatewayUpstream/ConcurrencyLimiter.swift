import DequeModule
import Synchronization

/// An async counting semaphore shared fairly between clients: at most `limit` holders, at most
/// `maxWaiting` waiters (more fail with `.overloaded`).
///
/// Each client waits in its own queue, first come first served within it. A freed permit goes to
/// the waiting client that holds the fewest permits, ties going round-robin, so one client's
/// burst cannot queue everyone else behind it. Nor can it fill the waiting room: when it is full,
/// a client with fewer waiters takes the place of the newest waiter of the longest queue, which
/// fails with `.overloaded`. A waiter whose task is cancelled leaves at once
/// with `.cancelled`; one still waiting at its deadline leaves with `.timeout`; neither ever
/// consumes a permit.
final class ConcurrencyLimiter: Sendable {
    private enum Admission {
        case admitted, cancelled, timedOut, displaced
    }

    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Admission, Never>
    }

    private struct State {
        var available: Int
        var queues: [String: Deque<Waiter>] = [:]
        /// Clients with waiters, in the order they take turns; a client served moves to the back.
        var turnOrder = Deque<String>()
        var waiting = 0
        var holdersByClient: [String: Int] = [:]
        /// When each client with permits or waiters was last admitted (a count of admissions).
        var lastAdmission: [String: UInt64] = [:]
        var admissions: UInt64 = 0
        var nextWaiterID: UInt64 = 0
        /// Waiters given an id but not queued yet, and which of them left (cancelled or timed out) already.
        var notYetQueued = Set<UInt64>()
        var leftBeforeQueued: [UInt64: Admission] = [:]

        mutating func hold(_ client: String) {
            holdersByClient[client, default: 0] += 1
            admissions += 1
            lastAdmission[client] = admissions
        }

        mutating func unhold(_ client: String) {
            guard let count = holdersByClient[client] else { return }
            holdersByClient[client] = count > 1 ? count - 1 : nil
            forgetIfIdle(client)
        }

        /// Keeps the per-client tables to the clients with permits or waiters.
        mutating func forgetIfIdle(_ client: String) {
            if holdersByClient[client] == nil && queues[client] == nil { lastAdmission[client] = nil }
        }

        /// The waiting client holding the fewest permits, then the one admitted longest ago, then
        /// the one whose turn came first.
        private func precedes(_ client: String, _ other: String) -> Bool {
            let holding = holdersByClient[client] ?? 0, otherHolding = holdersByClient[other] ?? 0
            if holding != otherHolding { return holding < otherHolding }
            return (lastAdmission[client] ?? 0) < (lastAdmission[other] ?? 0)
        }

        mutating func popNextWaiter() -> (client: String, waiter: Waiter)? {
            var chosen: Int?
            for (position, client) in turnOrder.enumerated() {
                if let best = chosen, !precedes(client, turnOrder[best]) { continue }
                chosen = position
            }
            guard let position = chosen else { return nil }
            let client = turnOrder.remove(at: position)
            guard let waiter = queues[client]?.popFirst() else { return nil }
            waiting -= 1
            if queues[client]?.isEmpty ?? true {
                queues[client] = nil
            } else {
                turnOrder.append(client)
            }
            return (client, waiter)
        }

        /// Gives a permit to the next waiter in turn and returns it to be resumed; nil when no one waits.
        mutating func admitNextWaiter() -> Waiter? {
            guard let (client, waiter) = popNextWaiter() else { return nil }
            hold(client)
            return waiter
        }

        /// The newest waiter of the longest queue, taken out for a newcomer from `client`, when
        /// that queue would still be longer than the newcomer's.
        mutating func displaceFromLongestQueue(for client: String) -> Waiter? {
            let own = queues[client]?.count ?? 0
            guard let longest = queues.max(by: { $0.value.count < $1.value.count }), longest.value.count > own + 1,
                  let waiter = queues[longest.key]?.popLast()
            else { return nil }
            waiting -= 1
            return waiter
        }

        mutating func remove(waiterID: UInt64, client: String) -> Waiter? {
            guard let index = queues[client]?.firstIndex(where: { $0.id == waiterID }),
                  let waiter = queues[client]?.remove(at: index)
            else { return nil }
            waiting -= 1
            if queues[client]?.isEmpty ?? true {
                queues[client] = nil
                turnOrder.removeAll { $0 == client }
                forgetIfIdle(client)
            }
            return waiter
        }
    }

    let limit: Int
    let maxWaiting: Int
    private let state: Mutex<State>
    /// Runs between a caller's finding no permit and its joining the queue: lets a test release a
    /// permit exactly there.
    private let beforeQueueing: @Sendable () -> Void

    init(limit: Int, maxWaiting: Int, beforeQueueing: @escaping @Sendable () -> Void = {}) {
        self.limit = max(1, limit)
        self.maxWaiting = max(0, maxWaiting)
        self.beforeQueueing = beforeQueueing
        state = Mutex(State(available: max(1, limit)))
    }

    var inUse: Int { state.withLock { limit - $0.available } }
    var waiting: Int { state.withLock { $0.waiting } }

    /// Takes a permit for `client`; release it with `release(client:)`.
    /// - Parameters:
    ///   - deadline: when waiting gives up with `.timeout`, on `clock`; nil waits as long as it takes.
    func acquire(client: String = "", deadline: UInt64? = nil, clock: any UpstreamClock = SystemUpstreamClock())
        async throws(UpstreamError)
    {
        if Task.isCancelled { throw .cancelled }
        let now = deadline == nil ? 0 : clock.now()
        let (immediate, displaced) = state.withLock { state -> (Result<UInt64?, UpstreamError>, Waiter?) in
            if state.available > 0 && state.waiting == 0 {
                state.available -= 1
                state.hold(client)
                return (.success(nil), nil)
            }
            if let deadline, now >= deadline { return (.failure(.timeout), nil) }
            var displaced: Waiter?
            if state.waiting >= maxWaiting {
                displaced = state.displaceFromLongestQueue(for: client)
                if displaced == nil { return (.failure(.overloaded), nil) }
            }
            state.nextWaiterID += 1
            state.notYetQueued.insert(state.nextWaiterID)
            return (.success(state.nextWaiterID), displaced)
        }
        displaced?.continuation.resume(returning: .displaced)
        guard let waiterID = try immediate.get() else { return }
        beforeQueueing()

        // Expires the wait at the deadline; cancelled as soon as the wait ends either way.
        let timer: Task<Void, Never>? = deadline.map { deadline in
            Task { [self] in
                do {
                    try await clock.sleep(until: deadline)
                } catch {
                    return
                }
                leave(waiterID: waiterID, client: client, as: .timedOut)
            }
        }
        defer { timer?.cancel() }

        let admission = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Admission, Never>) in
                let (leftAlready, admitted) = state.withLock { state -> (Admission?, [Waiter]) in
                    state.notYetQueued.remove(waiterID)
                    if let left = state.leftBeforeQueued.removeValue(forKey: waiterID) { return (left, []) }
                    if state.queues[client] == nil { state.turnOrder.append(client) }
                    state.queues[client, default: []].append(Waiter(id: waiterID, continuation: continuation))
                    state.waiting += 1
                    // A permit released since this caller found none met an empty queue and stayed
                    // in `available`: hand it on now, or every caller would wait for a release that
                    // already happened.
                    var admitted: [Waiter] = []
                    while state.available > 0, let waiter = state.admitNextWaiter() {
                        state.available -= 1
                        admitted.append(waiter)
                    }
                    return (nil, admitted)
                }
                if let leftAlready { continuation.resume(returning: leftAlready) }
                for waiter in admitted { waiter.continuation.resume(returning: .admitted) }
            }
        } onCancel: {
            leave(waiterID: waiterID, client: client, as: .cancelled)
        }
        switch admission {
        case .admitted: return
        case .cancelled: throw .cancelled
        case .timedOut: throw .timeout
        case .displaced: throw .overloaded
        }
    }

    /// Takes a waiter out of its queue without a permit. A waiter already admitted keeps its
    /// permit (its owner releases it); one not queued yet finds the note when it queues.
    private func leave(waiterID: UInt64, client: String, as admission: Admission) {
        let waiter: Waiter? = state.withLock { state in
            if let waiter = state.remove(waiterID: waiterID, client: client) { return waiter }
            if state.notYetQueued.contains(waiterID), state.leftBeforeQueued[waiterID] == nil {
                state.leftBeforeQueued[waiterID] = admission
            }
            return nil
        }
        waiter?.continuation.resume(returning: admission)
    }

    func release(client: String = "") {
        let next: Waiter? = state.withLock { state in
            state.unhold(client)
            // The permit passes straight on.
            if let waiter = state.admitNextWaiter() { return waiter }
            state.available = min(limit, state.available + 1)
            return nil
        }
        next?.continuation.resume(returning: .admitted)
    }
}
