import DequeModule
import Synchronization

/// An async counting semaphore: at most `limit` holders, waiters admitted first come first served,
/// at most `maxWaiting` waiters (more fail with `.overloaded`). A waiter whose task is cancelled
/// leaves the queue at once with `.cancelled` and never consumes a permit.
final class ConcurrencyLimiter: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var available: Int
        var waiters = Deque<Waiter>()
        var nextWaiterID: UInt64 = 0
        /// Waiters whose cancellation ran before they were queued.
        var cancelledBeforeQueued = Set<UInt64>()
    }

    let limit: Int
    let maxWaiting: Int
    private let state: Mutex<State>

    init(limit: Int, maxWaiting: Int) {
        self.limit = max(1, limit)
        self.maxWaiting = max(0, maxWaiting)
        state = Mutex(State(available: max(1, limit)))
    }

    var inUse: Int { state.withLock { limit - $0.available } }
    var waiting: Int { state.withLock { $0.waiters.count } }

    func acquire() async throws(UpstreamError) {
        if Task.isCancelled { throw .cancelled }
        let immediate: Result<UInt64?, UpstreamError> = state.withLock { state in
            if state.available > 0 && state.waiters.isEmpty {
                state.available -= 1
                return .success(nil)
            }
            guard state.waiters.count < maxWaiting else { return .failure(.overloaded) }
            state.nextWaiterID += 1
            return .success(state.nextWaiterID)
        }
        guard let waiterID = try immediate.get() else { return }

        let admitted = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let cancelledAlready = state.withLock { state in
                    if state.cancelledBeforeQueued.remove(waiterID) != nil { return true }
                    state.waiters.append(Waiter(id: waiterID, continuation: continuation))
                    return false
                }
                if cancelledAlready { continuation.resume(returning: false) }
            }
        } onCancel: {
            let waiter: Waiter? = state.withLock { state in
                if let index = state.waiters.firstIndex(where: { $0.id == waiterID }) {
                    return state.waiters.remove(at: index)
                }
                // Not queued yet: leave a note for the queueing step. A waiter already admitted
                // has left the queue and keeps its permit; its owner releases it.
                state.cancelledBeforeQueued.insert(waiterID)
                return nil
            }
            waiter?.continuation.resume(returning: false)
        }
        if !admitted { throw .cancelled }
        // An admitted waiter's note (if cancellation raced admission) must not linger.
        state.withLock { _ = $0.cancelledBeforeQueued.remove(waiterID) }
    }

    func release() {
        let next: Waiter? = state.withLock { state in
            if let waiter = state.waiters.popFirst() { return waiter }  // the permit passes straight on
            state.available = min(limit, state.available + 1)
            return nil
        }
        next?.continuation.resume(returning: true)
    }
}
