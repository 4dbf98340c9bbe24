@testable import GatewayCache
import GatewayEventLoop
import GatewayRedis
import GatewayTestSupport
import Testing

/// The tracker's ordering rules, without Redis: reports are handed in as the listener would.
struct SharedKeyTrackerTests {
    let l1 = MemoryLRUStore(maxBytes: 1 << 20)
    let tracker: SharedKeyTracker

    init() throws {
        tracker = SharedKeyTracker(l1: l1, loop: try EventLoop(name: "tracker-test"), entryPrefix: Array("p:c:".utf8))
        tracker.listenerConnected()
    }

    func report(_ keys: String...) {
        tracker.handle(.keys(keys.map { Array(("p:c:" + $0).utf8) }))
    }

    var sample: CachedEntry {
        let instant = monotonicNanoseconds()
        return CachedEntry(value: [1], storedAt: instant, freshUntil: instant + 60_000_000_000, staleUntil: instant + 60_000_000_000)
    }

    @Test func anL2ReadOvertakenByAReportIsNotKept() {
        let start = tracker.beginRead("k")
        report("k")
        tracker.finishRead("k", startedAt: start, entry: sample)
        #expect(l1.lookup("k") == nil)

        // A report for another key does not matter; nor does one before the read started.
        report("k")
        let second = tracker.beginRead("k")
        report("other")
        tracker.finishRead("k", startedAt: second, entry: sample)
        #expect(l1.lookup("k") != nil)
    }

    @Test func overlappingReadsOfOneKeyAreJudgedEachByItsOwnStart() {
        let early = tracker.beginRead("k")
        report("k")
        let late = tracker.beginRead("k")
        tracker.finishRead("k", startedAt: early, entry: sample)
        #expect(l1.lookup("k") == nil)
        tracker.finishRead("k", startedAt: late, entry: sample)
        #expect(l1.lookup("k") != nil)
    }

    @Test func nothingIsKeptFromL2WhileTheListenerIsDown() {
        tracker.handle(.connectionLost)
        #expect(!tracker.isConnected)
        let start = tracker.beginRead("k")
        tracker.finishRead("k", startedAt: start, entry: sample)
        #expect(l1.lookup("k") == nil)
        // A read that started before the loss is not kept either, even once connected again.
        tracker.listenerConnected()
        let before = tracker.beginRead("k")
        tracker.handle(.connectionLost)
        tracker.listenerConnected()
        tracker.finishRead("k", startedAt: before, entry: sample)
        #expect(l1.lookup("k") == nil)
    }

    @Test func lossFlushAndReconnectEachDropEverything() {
        for invalidation in [RedisInvalidation.connectionLost, .everything] {
            l1.store("a", entry: sample)
            #expect(tracker.storeOwn("b", entry: sample))
            tracker.handle(invalidation)
            #expect(l1.lookup("a") == nil && l1.lookup("b") == nil)
            l1.store("a", entry: sample)
            tracker.listenerConnected()
            #expect(l1.lookup("a") == nil)
        }
    }

    @Test func ownWritesKeepTheirEntryAndAForeignWriteAfterThemDropsIt() {
        #expect(tracker.storeOwn("k", entry: sample))
        #expect(tracker.storeOwn("k", entry: sample))
        report("k")
        report("k")
        #expect(l1.lookup("k") != nil)
        #expect(tracker.ownWriteReports.load(ordering: .relaxed) == 2)
        report("k")
        #expect(l1.lookup("k") == nil)
        #expect(tracker.appliedReports.load(ordering: .relaxed) == 1)
    }

    @Test func aFailedOwnWriteWhoseCountWasConsumedDropsTheEntry() {
        // The count was consumed by a report that may have been another replica's write.
        #expect(tracker.storeOwn("k", entry: sample))
        report("k")
        tracker.ownWriteFailed("k")
        #expect(l1.lookup("k") == nil)
        // Not consumed: no report is coming, the entry stays, and the next report drops it.
        #expect(tracker.storeOwn("k", entry: sample))
        tracker.ownWriteFailed("k")
        #expect(l1.lookup("k") != nil)
        report("k")
        #expect(l1.lookup("k") == nil)
    }

    /// A report (or a flush) between a load's taking its ticket and its waiting ends the wait at
    /// once. (A load used to register only when it began to wait: such a report found no one to
    /// wake, and the load slept its whole poll interval.)
    @Test(.timeLimit(.minutes(1)))
    func aChangeBeforeTheWaitBeginsEndsTheWaitAtOnce() async {
        let reported = tracker.expectChange(of: "k")
        let flushed = tracker.expectChange(of: "other")
        report("k")
        #expect(await endsByItself(reported))
        tracker.handle(.everything)
        #expect(await endsByItself(flushed))
    }

    /// Waits on `ticket` for up to a minute; false when a watchdog had to end the wait after 20 s.
    /// The tracker's loop is never started, so its timer cannot end the wait: only a change can.
    func endsByItself(_ ticket: SharedKeyTracker.ChangeTicket) async -> Bool {
        let watchdogFired = Flag()
        let watchdog = Task { [tracker] in
            try await Task.sleep(for: .seconds(20))
            watchdogFired.set()
            tracker.forget(ticket)
        }
        await tracker.wait(ticket, atMost: 60_000_000_000)
        watchdog.cancel()
        return !watchdogFired.isSet
    }

    @Test func ownWritesWhileTheListenerIsDownAreNotCounted() {
        tracker.handle(.connectionLost)
        #expect(!tracker.storeOwn("k", entry: sample))
        #expect(l1.lookup("k") != nil)
    }
}
