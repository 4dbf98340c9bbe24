import GatewayEventLoop
import GatewayTestSupport
import Glibc
import Synchronization
import Testing

/// The loop's thread identity and its end-of-iteration work.
@Suite struct EventLoopTests {
    /// Runs `body` on a fresh loop's thread and waits for the loop to go idle again.
    static func onLoop(_ body: @escaping @Sendable (EventLoop) -> Void) async throws -> EventLoop {
        let loop = try EventLoop(name: "test-loop")
        try loop.start()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            loop.execute {
                body(loop)
                // Queued behind everything `body` queued, and after the end of its iteration.
                loop.runAtIterationEnd { loop.execute { done.resume() } }
            }
        }
        return loop
    }

    @Test func currentIsTheLoopOnItsOwnThreadOnly() async throws {
        #expect(EventLoop.current == nil)
        let seen = Mutex<[ObjectIdentifier?]>([])
        let loop = try await Self.onLoop { _ in
            seen.withLock { $0.append(EventLoop.current.map(ObjectIdentifier.init)) }
        }
        #expect(seen.withLock { $0 } == [ObjectIdentifier(loop)])
        #expect(EventLoop.current == nil)
        loop.stop()
        await loop.waitUntilStopped()
    }

    @Test func iterationEndWorkRunsOnceAfterTheIterationsOtherWorkBeforeTheLoopWaits() async throws {
        let order = Mutex<[String]>([])
        let loop = try await Self.onLoop { loop in
            order.withLock { $0.append("work") }
            loop.runAtIterationEnd { order.withLock { $0.append("end 1") } }
            loop.runAtIterationEnd { order.withLock { $0.append("end 2") } }
            loop.execute { order.withLock { $0.append("queued work") } }
        }
        // Nothing else wakes the loop: the end work ran before it went to sleep.
        #expect(order.withLock { $0 } == ["work", "queued work", "end 1", "end 2"])
        loop.stop()
        await loop.waitUntilStopped()
    }

    /// An owner that died leaves its object behind; a new owner at the same address (malloc hands
    /// freed blocks straight back) must get a fresh object, never the dead one's.
    @Test func aNewOwnerAtADeadOwnersAddressGetsAFreshObject() async throws {
        final class Owner: Sendable {}
        final class Counter { var value = 0 }
        let outcome = Mutex<(reused: Bool, inherited: Bool)>((false, false))
        let loop = try await Self.onLoop { loop in
            var owner: Owner? = Owner()
            let address = owner.map { ObjectIdentifier($0) }
            if let owner { loop.confinedObject(for: owner) { Counter() }.value = 41 }
            owner = nil
            var keptAlive: [Owner] = []
            for _ in 0..<10_000 {
                let candidate = Owner()
                if ObjectIdentifier(candidate) == address {
                    let inherited = loop.confinedObject(for: candidate) { Counter() }.value == 41
                    outcome.withLock { $0 = (true, inherited) }
                    break
                }
                keptAlive.append(candidate)
            }
        }
        let (reused, inherited) = outcome.withLock { $0 }
        // Without reuse there is nothing to check; glibc reuses the block at once in practice.
        #expect(reused)
        #expect(!inherited)
        loop.stop()
        await loop.waitUntilStopped()
    }

    @Test func aConfinedObjectIsMadeOncePerOwnerAndLoop() async throws {
        final class Owner: Sendable {}
        final class Counter { var value = 0 }
        final class Label {
            let value: Int
            init(_ value: Int) { self.value = value }
        }
        let first = Owner()
        let second = Owner()
        let values = Mutex<[Int]>([])
        let loop = try await Self.onLoop { loop in
            for owner in [first, second, first, first] {
                let counter = loop.confinedObject(for: owner) { Counter() }
                counter.value += 1
                values.withLock { $0.append(counter.value) }
            }
            // The same identity asking for another type gets a fresh object of that type.
            let label = loop.confinedObject(for: first) { Label(7) }
            values.withLock { $0.append(label.value) }
        }
        #expect(values.withLock { $0 } == [1, 1, 2, 3, 7])
        loop.stop()
        await loop.waitUntilStopped()
    }
}

/// Records, for each readiness it handles, how long after the loop learned of it the handler ran,
/// then keeps the loop busy for `busyNanoseconds` (as a slow request would).
private final class BusyHandler: IOEventHandler, @unchecked Sendable {
    // @unchecked: `loop` and `descriptor` are set before registration; `waits` is behind its Mutex.
    let loop: EventLoop
    let descriptor: Int32
    let busyNanoseconds: UInt64
    let waits = Mutex<[UInt64]>([])

    init(loop: EventLoop, descriptor: Int32, busyNanoseconds: UInt64) {
        self.loop = loop
        self.descriptor = descriptor
        self.busyNanoseconds = busyNanoseconds
    }

    func handle(_ events: IOEvents) {
        var byte: UInt8 = 0
        _ = read(descriptor, &byte, 1)
        let entered = monotonicNanoseconds()
        waits.withLock { $0.append(entered.subtractingClamped(loop.iterationStartedAt)) }
        while monotonicNanoseconds().subtractingClamped(entered) < busyNanoseconds {}
    }
}

@Suite struct IterationInstantTests {
    @Test func handlersLaterInABatchSeeTheInstantTheLoopLearnedOfTheirReadiness() async throws {
        var firstEnds: [Int32] = [-1, -1]
        var secondEnds: [Int32] = [-1, -1]
        #expect(pipe(&firstEnds) == 0 && pipe(&secondEnds) == 0)
        let first = firstEnds, second = secondEnds
        let loop = try EventLoop(name: "batch-loop")
        try loop.start()
        let busy: UInt64 = 300_000_000
        let handlers = [
            BusyHandler(loop: loop, descriptor: first[0], busyNanoseconds: busy),
            BusyHandler(loop: loop, descriptor: second[0], busyNanoseconds: busy),
        ]
        // Both become readable while the loop is held up, so one epoll_wait reports both.
        await withCheckedContinuation { (registered: CheckedContinuation<Void, Never>) in
            loop.execute {
                try? loop.register(first[0], interest: .readable, handler: handlers[0])
                try? loop.register(second[0], interest: .readable, handler: handlers[1])
                var byte: UInt8 = 1
                _ = write(first[1], &byte, 1)
                _ = write(second[1], &byte, 1)
                registered.resume()
            }
        }
        #expect(await waitUntil { handlers.allSatisfy { !$0.waits.withLock { $0 }.isEmpty } })
        let waits = handlers.compactMap { $0.waits.withLock { $0 }.first }.sorted()
        // The first ran at once; the second waited behind the first's 300 ms, and its instant says so.
        #expect(waits.count == 2)
        #expect(waits.first.map { $0 < busy } == true, "\(waits)")
        #expect(waits.last.map { $0 >= busy } == true, "\(waits)")
        loop.execute {
            loop.unregister(first[0])
            loop.unregister(second[0])
        }
        loop.stop()
        await loop.waitUntilStopped()
        for fd in first + second { _ = close(fd) }
    }
}
