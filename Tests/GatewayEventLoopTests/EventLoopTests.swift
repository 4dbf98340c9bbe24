import GatewayEventLoop
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
}
