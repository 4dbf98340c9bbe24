import Synchronization

/// A monotonic clock (nanoseconds) that moves only when a test moves it.
public final class ManualClock: Sendable {
    private let nanoseconds: Atomic<UInt64>

    public init(_ start: UInt64 = 1_000) { nanoseconds = Atomic(start) }

    public var now: @Sendable () -> UInt64 { { self.nanoseconds.load(ordering: .relaxed) } }
    public var current: UInt64 { nanoseconds.load(ordering: .relaxed) }
    public func set(_ value: UInt64) { nanoseconds.store(value, ordering: .relaxed) }
    public func advance(by delta: UInt64) { nanoseconds.add(delta, ordering: .relaxed) }
}
