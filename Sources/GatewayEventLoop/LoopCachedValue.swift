public import Synchronization

/// A value that every request reads and that seldom changes (the configured clients, keys already
/// matched, known metric series), shared by all loops.
///
/// Each event loop keeps its own copy and refreshes it only after a change, so a read on a loop
/// costs an atomic load of a counter that is only ever written on a change: no lock whose cache line
/// bounces between cores on every request. Off the loops a read takes the lock. A reader sees the
/// value as of some update, never a mix of two.
///
/// Inlinable, so that each user gets it specialised for its value: unspecialised, every read looked
/// up generic metadata at run time, which cost more than the lock it replaces.
public final class LoopCachedValue<Value: Sendable>: Sendable {
    /// Touched by its own loop only, one plain read or write at a time: the runtime's exclusivity
    /// check (two per read, a dozen per request across the gateway's copies) guards against
    /// nothing here.
    @usableFromInline final class LoopCopy {
        @exclusivity(unchecked) @usableFromInline var generation: UInt64 = 0
        @exclusivity(unchecked) @usableFromInline var value: Value?
        @usableFromInline init() {}
    }

    @usableFromInline struct Shared: ~Copyable {
        @usableFromInline var generation: UInt64
        @usableFromInline var value: Value
        @usableFromInline init(generation: UInt64, value: Value) {
            self.generation = generation
            self.value = value
        }
    }

    @usableFromInline let shared: Mutex<Shared>
    @usableFromInline let copies = LoopLocal { LoopCopy() }
    /// Bumped (inside the lock) by every update; a loop's copy of an older one is stale.
    @usableFromInline let generation = Atomic<UInt64>(1)

    @inlinable public init(_ value: Value) {
        shared = Mutex(Shared(generation: 1, value: value))
    }

    @inlinable public var value: Value {
        guard let copy = copies.onCurrentLoop else { return shared.withLock { $0.value } }
        if copy.generation == generation.load(ordering: .acquiring), let value = copy.value { return value }
        let (generation, value) = shared.withLock { ($0.generation, $0.value) }
        copy.generation = generation
        copy.value = value
        return value
    }

    /// Changes the value under the lock; every loop reads the result from its next read on.
    @inlinable @discardableResult
    public func update<Result>(_ body: (inout Value) -> Result) -> Result {
        shared.withLock { state in
            let result = body(&state.value)
            state.generation &+= 1
            generation.store(state.generation, ordering: .releasing)
            return result
        }
    }
}
