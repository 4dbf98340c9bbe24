import GatewayEventLoop
import GatewayJSON
import Testing

/// Large JSON work leaves the event loop that serves the request, and the request comes back to it.
@Suite struct BulkWorkTests {
    struct Placement: Sendable, Equatable {
        var before: Bool
        var largeWork: Bool
        var smallWork: Bool
        var after: Bool
    }

    @Test func largeWorkRunsOffTheLoopAndTheTaskReturnsToIt() async throws {
        let loop = try EventLoop(name: "bulk-work-test")
        try loop.start()
        let placement = await Task(executorPreference: loop) {
            let before = loop.inEventLoop
            let largeWork = await BulkWork.perform(inputBytes: BulkWork.inlineLimitBytes + 1) { loop.inEventLoop }
            let smallWork = await BulkWork.perform(inputBytes: BulkWork.inlineLimitBytes) { loop.inEventLoop }
            return Placement(before: before, largeWork: largeWork, smallWork: smallWork, after: loop.inEventLoop)
        }.value
        #expect(placement == Placement(before: true, largeWork: false, smallWork: true, after: true))
        loop.stop()
        await loop.waitUntilStopped()
    }

    @Test func errorsComeThroughTyped() async {
        struct Refused: Error, Equatable {}
        await #expect(throws: Refused()) {
            try await BulkWork.perform(offLoop: true) { () throws(Refused) -> Int in throw Refused() }
        }
    }
}
