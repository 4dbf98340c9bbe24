import Synchronization

/// A one-shot barrier: `wait()` suspends until `open()` (and returns at once after it).
public final class Gate: Sendable {
    private let state = Mutex<(isOpen: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    public init() {}

    public func wait() async {
        await withCheckedContinuation { continuation in
            let proceed = state.withLock { state -> Bool in
                if state.isOpen { return true }
                state.waiters.append(continuation)
                return false
            }
            if proceed { continuation.resume() }
        }
    }

    public func open() {
        let waiters = state.withLock { state in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}

/// A flag one task sets and another reads.
public final class Flag: Sendable {
    private let state = Atomic<Bool>(false)

    public init() {}

    public func set() { state.store(true, ordering: .relaxed) }
    public var isSet: Bool { state.load(ordering: .relaxed) }
}

/// Counts calls across tasks.
public final class Counter: Sendable {
    private let value = Atomic<Int>(0)

    public init() {}

    @discardableResult public func increment() -> Int { value.add(1, ordering: .relaxed).newValue }
    public var count: Int { value.load(ordering: .relaxed) }
}

/// Polls `condition` every millisecond for up to `seconds`; true as soon as it holds. For letting
/// concurrent tasks reach a known point, never for measuring time: the bound only keeps a broken
/// test from hanging, so it is generous.
public func waitUntil(seconds: Int = 10, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(1))
    }
    return condition()
}
