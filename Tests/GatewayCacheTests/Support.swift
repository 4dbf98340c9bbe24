import Synchronization
@testable import GatewayCache

/// A clock that moves only when a test moves it.
final class ManualClock: Sendable {
    private let nanoseconds: Atomic<UInt64>

    init(_ start: UInt64 = 1_000) { nanoseconds = Atomic(start) }

    var now: @Sendable () -> UInt64 { { self.nanoseconds.load(ordering: .relaxed) } }
    var current: UInt64 { nanoseconds.load(ordering: .relaxed) }
    func set(_ value: UInt64) { nanoseconds.store(value, ordering: .relaxed) }
    func advance(by delta: UInt64) { nanoseconds.add(delta, ordering: .relaxed) }
}

/// Counts calls across tasks.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    @discardableResult func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
    var count: Int { value.load(ordering: .relaxed) }
}

struct LoadFailure: Error, Equatable {
    let tag: Int
}

/// Yields until `condition` holds; bounded so a broken implementation fails instead of hanging.
func yieldUntil(_ condition: () async -> Bool) async -> Bool {
    for _ in 0..<1_000_000 {
        if await condition() { return true }
        await Task.yield()
    }
    return false
}


func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }
