@testable import GatewayEventLoop
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

    /// Each loop gets its own object, made on its first use and kept; off the loops there is none.
    @Test func aLoopLocalObjectIsMadeOncePerLoopAndNoneOffTheLoops() async throws {
        final class Counter { var value = 0 }
        let local = LoopLocal { Counter() }
        #expect(local.onCurrentLoop == nil)
        let seen = Mutex<[Int]>([])
        var loops: [EventLoop] = []
        for _ in 0..<2 {
            loops.append(try await Self.onLoop { _ in
                for _ in 0..<3 {
                    guard let counter = local.onCurrentLoop else { return }
                    counter.value += 1
                    seen.withLock { $0.append(counter.value) }
                }
            })
        }
        // Three uses of one object on each loop: a second loop starts from its own.
        #expect(seen.withLock { $0 } == [1, 2, 3, 1, 2, 3])
        #expect(local.onCurrentLoop == nil)
        for loop in loops {
            loop.stop()
            await loop.waitUntilStopped()
        }
    }

    /// A loop that takes the slot of one that has gone (same slot, new epoch in its tag) gets a
    /// fresh object, never the old loop's, whose state (a half-flushed log batch, say) belongs to
    /// a thread that no longer runs. Driven by tags directly: which slot a new loop gets depends
    /// on what other tests' loops hold at the time.
    @Test func aLoopTakingAGoneLoopsSlotGetsAFreshObject() {
        final class Counter { var value = 0 }
        let local = LoopLocal { Counter() }
        let slot = 5
        let firstEpoch = 1 << 8 | slot, secondEpoch = 2 << 8 | slot
        local.object(forTag: firstEpoch)?.value = 41
        #expect(local.object(forTag: firstEpoch)?.value == 41, "kept for its loop")
        #expect(local.object(forTag: secondEpoch)?.value == 0, "not inherited by the slot's next loop")
        #expect(local.object(forTag: 1 << 8 | 6)?.value == 0, "another slot has its own")
        #expect(local.object(forTag: -1) == nil, "off the loops")
    }

    /// Live loops never share a slot, and a slot comes back only with a new epoch.
    @Test func liveLoopsHoldDistinctSlotsAndAReusedSlotHasANewEpoch() throws {
        var loops = try (0..<8).map { _ in try EventLoop(name: "slot-test") }
        let slots = loops.map { $0.localTag & 0xFF }
        #expect(loops.allSatisfy { $0.localTag >= 0 })
        #expect(Set(slots).count == loops.count)
        let gone = loops.removeLast().localTag
        let next = try EventLoop(name: "slot-test")
        #expect(next.localTag != gone, "the same tag twice would hand the new loop the old one's objects")
        #expect(!loops.contains { $0.localTag & 0xFF == next.localTag & 0xFF })
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
