@testable import GatewayIndex
import GatewayProviders
import GatewayTestSupport
import GatewayUpstream
import Synchronization
import Testing

/// An index's turns wait only as long as the request: a cancelled or timed-out waiter leaves the
/// queue at once and never holds the turn, and the turn always passes on to a waiter still there.
@Suite struct SerialTurnsTests {
    static let cancelled = ProviderError.unreachable(reason: "the request was cancelled")

    /// Holds a turn of `turns` until the returned gate opens.
    static func hold(_ turns: SerialTurns) async -> (holder: Task<Void, any Error>, gate: Gate) {
        let gate = Gate()
        let holding = Flag()
        let holder = Task {
            try await turns.run { () throws(ProviderError) in
                holding.set()
                await gate.wait()
            }
        }
        #expect(await waitUntil { holding.isSet })
        return (holder, gate)
    }

    /// A task asking `turns` for a turn whose step sets `ran`, counting its return in `returned`;
    /// with `cancelledFirst`, cancelled before it asks.
    static func waiter(
        _ turns: SerialTurns, deadline: UInt64? = nil, cancelledFirst: Bool = false, ran: Flag = Flag(), returned: Counter = Counter()
    ) -> Task<Void, any Error> {
        Task {
            defer { returned.increment() }
            if cancelledFirst { withUnsafeCurrentTask { $0?.cancel() } }
            try await turns.run(deadline: deadline) { () throws(ProviderError) in ran.set() }
        }
    }

    /// A waiter whose task is cancelled while the turn is held leaves at once; the holder's turn
    /// then goes to the waiter queued behind it. (The cancelled waiter used to wait for the turn
    /// anyway, and ran its step when it came.)
    @Test(.timeLimit(.minutes(1)))
    func aCancelledWaiterLeavesAtOnceAndTheTurnGoesToTheNextWaiter() async throws {
        let turns = SerialTurns()
        let (holder, gate) = await Self.hold(turns)
        let cancelledRan = Flag()
        let cancelledReturned = Counter()
        let cancelled = Self.waiter(turns, ran: cancelledRan, returned: cancelledReturned)
        #expect(await waitUntil { turns.waiting == 1 })
        let nextRan = Flag()
        let next = Self.waiter(turns, ran: nextRan)
        #expect(await waitUntil { turns.waiting == 2 })

        cancelled.cancel()
        #expect(await waitUntil { cancelledReturned.count == 1 }, "left while the turn was still held")
        #expect(turns.waiting == 1)

        gate.open()
        try await holder.value
        try await next.value
        await #expect(throws: Self.cancelled) { try await cancelled.value }
        #expect(nextRan.isSet && !cancelledRan.isSet)
        #expect(turns.waiting == 0)
        // The turn came back: a new step runs at once.
        try await turns.run { () throws(ProviderError) in }
    }

    /// A task cancelled before it asks for a turn does not queue, held turn or not.
    @Test(.timeLimit(.minutes(1)))
    func aTaskCancelledBeforeItAsksReturnsAtOnce() async throws {
        let turns = SerialTurns()
        let (holder, gate) = await Self.hold(turns)
        let ran = Flag()
        let returned = Counter()
        let task = Self.waiter(turns, cancelledFirst: true, ran: ran, returned: returned)
        #expect(await waitUntil { returned.count == 1 }, "returned while the turn was still held")
        #expect(turns.waiting == 0)
        gate.open()
        try await holder.value
        await #expect(throws: Self.cancelled) { try await task.value }
        #expect(!ran.isSet)

        // With the turn free, too: a cancelled request starts no step.
        let free = Self.waiter(turns, cancelledFirst: true, ran: ran)
        await #expect(throws: Self.cancelled) { try await free.value }
        #expect(!ran.isSet)
        try await turns.run { () throws(ProviderError) in }
    }

    /// A waiter still queued at its deadline leaves with `.timeout`, and one whose deadline has
    /// passed does not queue; the turn goes on to the waiter behind.
    @Test(.timeLimit(.minutes(1)))
    func aWaiterLeavesAtItsDeadline() async throws {
        let turns = SerialTurns()
        let clock = SystemUpstreamClock()
        let (holder, gate) = await Self.hold(turns)
        let ran = Flag()
        let returned = Counter()
        let expiring = Self.waiter(turns, deadline: clock.now() + 20_000_000, ran: ran, returned: returned)
        let late = Self.waiter(turns, deadline: clock.now(), ran: ran, returned: returned)
        #expect(await waitUntil { returned.count == 2 }, "both left while the turn was still held")
        #expect(turns.waiting == 0)
        let next = Self.waiter(turns, deadline: clock.now() + 60_000_000_000)
        #expect(await waitUntil { turns.waiting == 1 })

        gate.open()
        try await holder.value
        try await next.value
        await #expect(throws: ProviderError.timeout) { try await expiring.value }
        await #expect(throws: ProviderError.timeout) { try await late.value }
        #expect(!ran.isSet)
    }

    /// Many waiters, some cancelled while the turn is held, some while turns pass from one to the
    /// next: never two steps at once, every waiter not cancelled gets its turn (a lost turn leaves
    /// waiters queued for good), one cancelled while the turn was held never does, and one
    /// cancelled later either ran or threw.
    @Test(.timeLimit(.minutes(1)), arguments: 0..<20)
    func cancelsRacingWithReleasesNeverLoseTheTurn(round: Int) async throws {
        final class Record: Sendable {
            let counts = Mutex<(inside: Int, highest: Int)>((0, 0))
            let ran = Mutex<Set<Int>>([])
            let returned = Atomic<Int>(0)
            func enter(_ index: Int) {
                counts.withLock { $0.inside += 1; $0.highest = max($0.highest, $0.inside) }
                ran.withLock { _ = $0.insert(index) }
            }
            func leave() { counts.withLock { $0.inside -= 1 } }
        }
        enum Plan { case keep, cancelWhileHeld, cancelWhilePassing }
        var random = SplitMix64(seed: UInt64(round) &+ 0x5EED)
        let plans: [Plan] = (0..<300).map { _ in
            switch random.next() % 3 {
            case 0: .cancelWhileHeld
            case 1: .cancelWhilePassing
            default: .keep
            }
        }
        let turns = SerialTurns()
        let record = Record()
        let (holder, gate) = await Self.hold(turns)
        let waiters = plans.indices.map { index in
            Task {
                defer { record.returned.add(1, ordering: .relaxed) }
                try await turns.run { () throws(ProviderError) in
                    record.enter(index)
                    if index % 3 == 0 { await Task.yield() }
                    record.leave()
                }
            }
        }
        // Some of these have not asked yet, the others are queued.
        for (index, plan) in plans.enumerated() where plan == .cancelWhileHeld { waiters[index].cancel() }
        let cancelledWhileHeld = plans.filter { $0 == .cancelWhileHeld }.count
        #expect(await waitUntil { record.returned.load(ordering: .relaxed) == cancelledWhileHeld })

        gate.open()
        for index in plans.indices.shuffled(using: &random) where plans[index] == .cancelWhilePassing {
            for _ in 0..<random.next() % 4 { await Task.yield() }
            waiters[index].cancel()
        }
        // Bounded, so that a lost turn fails here: the waiters are not this test's children, and
        // the time limit would not end them.
        let allReturned = await waitUntil(seconds: 20) { record.returned.load(ordering: .relaxed) == plans.count }
        #expect(allReturned, "every waiter returned: \(record.returned.load(ordering: .relaxed)) of \(plans.count)")
        if !allReturned { waiters.forEach { $0.cancel() } }
        var results: [Result<Void, any Error>] = []
        for waiter in waiters { results.append(await waiter.result) }
        try await holder.value

        let ran = record.ran.withLock { $0 }
        #expect(record.counts.withLock { $0.highest } == 1)
        for (index, plan) in plans.enumerated() {
            switch (plan, results[index]) {
            case (.keep, .success), (.cancelWhilePassing, .success):
                #expect(ran.contains(index))
            case (.cancelWhileHeld, .failure(let error)), (.cancelWhilePassing, .failure(let error)):
                #expect(error as? ProviderError == Self.cancelled)
                #expect(!ran.contains(index))
            case (.keep, .failure(let error)):
                Issue.record("waiter \(index), never cancelled, failed: \(error)")
            case (.cancelWhileHeld, .success):
                Issue.record("waiter \(index), cancelled while the turn was held, took a turn")
            }
        }
        #expect(turns.waiting == 0)
        try await turns.run { () throws(ProviderError) in }
    }
}
