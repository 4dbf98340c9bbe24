import GatewayEventLoop
import Synchronization
import Testing

/// A value each loop reads from its own copy, refreshed after every change.
@Suite struct LoopCachedValueTests {
    /// Runs `body` on `loop`'s thread and returns what it returned.
    static func onLoop<Result: Sendable>(_ loop: EventLoop, _ body: @escaping @Sendable () -> Result) async -> Result {
        await withCheckedContinuation { (done: CheckedContinuation<Result, Never>) in
            loop.execute { done.resume(returning: body()) }
        }
    }

    @Test func offTheLoopsReadsAndUpdatesGoThroughTheLock() {
        let value = LoopCachedValue([1])
        #expect(value.value == [1])
        let count = value.update { numbers -> Int in
            numbers.append(2)
            return numbers.count
        }
        #expect(count == 2)
        #expect(value.value == [1, 2])
    }

    @Test func aLoopSeesEveryUpdateFromItsNextReadOn() async throws {
        let loops = try EventLoopGroup(count: 2, namePrefix: "cached-value")
        let value = LoopCachedValue("first")
        for loop in loops.loops {
            #expect(await Self.onLoop(loop) { value.value } == "first")
        }
        // Changed from outside both loops, after each had cached its copy.
        value.update { $0 = "second" }
        for loop in loops.loops {
            #expect(await Self.onLoop(loop) { value.value } == "second")
        }
        // Changed on one loop: the other loop's copy is stale from then on.
        await Self.onLoop(loops.loops[0]) { value.update { $0 = "third" } }
        #expect(await Self.onLoop(loops.loops[1]) { value.value } == "third")
        #expect(await Self.onLoop(loops.loops[0]) { value.value } == "third")
        await loops.shutdown()
    }

    /// Updates from off the loops and from either loop, each followed by a read on every loop: each
    /// loop sees every update from its next read on, whoever made it.
    @Test func everyLoopSeesEachUpdateFromItsNextRead() async throws {
        let loops = try EventLoopGroup(count: 2, namePrefix: "cached-value")
        let value = LoopCachedValue(0)
        for expected in 1...300 {
            switch expected % 3 {
            case 0: value.update { $0 += 1 }
            case 1: await Self.onLoop(loops.loops[0]) { value.update { $0 += 1 } }
            default: await Self.onLoop(loops.loops[1]) { value.update { $0 += 1 } }
            }
            for loop in loops.loops {
                let seen = await Self.onLoop(loop) { value.value }
                #expect(seen == expected)
                if seen != expected { break }
            }
        }
        await loops.shutdown()
    }

    @Test func readsOnLoopsDuringUpdatesNeverGoBackwards() async throws {
        let loops = try EventLoopGroup(count: 2, namePrefix: "cached-value")
        let value = LoopCachedValue(0)
        let finished = Atomic<Bool>(false)
        async let updates: Void = {
            // Paced, so that the loops read many times while the value changes.
            for _ in 0..<2_000 {
                value.update { $0 += 1 }
                await Task.yield()
            }
            finished.store(true, ordering: .releasing)
        }()
        var monotonic = true
        var last = [0, 0]
        while !finished.load(ordering: .acquiring) {
            for (index, loop) in loops.loops.enumerated() {
                let seen = await Self.onLoop(loop) { value.value }
                if seen < last[index] { monotonic = false }
                last[index] = seen
            }
        }
        await updates
        #expect(monotonic)
        for loop in loops.loops {
            #expect(await Self.onLoop(loop) { value.value } == 2_000)
        }
        await loops.shutdown()
    }
}
