import DequeModule
import Synchronization

/// The hit answers of stored pages as last served, so that a page served many times is decoded and
/// rendered once rather than on every request.
///
/// An answer is reused only for the very stored value it was rendered from: the memo keeps that
/// value, so that its storage cannot be freed and reused for another, and compares storage
/// identity with what the store returned, never bytes (an equal page stored again is rendered
/// again once, rather than compared byte by byte on every request). Whatever the store
/// replaces, expires or evicts is therefore never answered from here. Only answers whose
/// rendering does not depend on the request go in (`durationMs` 0, `cache: "hit"`).
///
/// Bounded in bytes (the stored value and the answer's body both count), oldest first out; a
/// budget of 0 keeps nothing.
final class PreparedHits: Sendable {
    /// Everything a remembered answer costs besides its two byte arrays: the key, the entry and the
    /// answer's strings, as a round figure.
    static let perEntryOverheadBytes = 256

    private struct Prepared {
        var source: [UInt8]
        var answer: ExecutionsAnswer
        var cost: Int
        var sequence: UInt64
    }

    private struct State {
        var entries: [String: Prepared] = [:]
        /// Keys in the order they were remembered, with the sequence number they got then; a key
        /// remembered again appears twice, and only its latest appearance counts.
        var order = Deque<(key: String, sequence: UInt64)>()
        var bytes = 0
        var nextSequence: UInt64 = 0
    }

    let budgetBytes: Int
    private let state = Mutex(State())

    init(budgetBytes: Int) {
        self.budgetBytes = max(0, budgetBytes)
    }

    /// The answer remembered for `key`, if it was rendered from `source`.
    func answer(for key: String, source: [UInt8]) -> ExecutionsAnswer? {
        state.withLock { state in
            guard let prepared = state.entries[key], Self.sameStorage(prepared.source, source) else { return nil }
            return prepared.answer
        }
    }

    static func sameStorage(_ first: [UInt8], _ second: [UInt8]) -> Bool {
        first.count == second.count && first.withUnsafeBufferPointer { first in
            second.withUnsafeBufferPointer { second in first.baseAddress == second.baseAddress }
        }
    }

    /// Remembers `answer`, rendered from the stored value `source`, replacing what `key` had.
    func remember(_ answer: ExecutionsAnswer, for key: String, source: [UInt8]) {
        let cost = source.count + answer.body.count + key.utf8.count + Self.perEntryOverheadBytes
        guard cost <= budgetBytes else { return }
        state.withLock { state in
            if let previous = state.entries[key] { state.bytes -= previous.cost }
            let sequence = state.nextSequence
            state.nextSequence += 1
            state.entries[key] = Prepared(source: source, answer: answer, cost: cost, sequence: sequence)
            state.order.append((key, sequence))
            state.bytes += cost
            while state.bytes > budgetBytes, let oldest = state.order.popFirst() {
                guard let entry = state.entries[oldest.key], entry.sequence == oldest.sequence else { continue }
                state.entries[oldest.key] = nil
                state.bytes -= entry.cost
            }
            // Keys remembered again leave stale appearances behind; drop them before they pile up.
            if state.order.count > 2 * state.entries.count + 16 {
                state.order = Deque(state.order.filter { state.entries[$0.key]?.sequence == $0.sequence })
            }
        }
    }

    /// Bytes and entries held, for tests and metrics.
    var usage: (bytes: Int, entries: Int) { state.withLock { ($0.bytes, $0.entries.count) } }
}
