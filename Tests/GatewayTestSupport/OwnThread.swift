import Foundation
import Synchronization

/// Runs blocking work (waiting for a child process, polling a port) on a thread of its own.
///
/// Swift's cooperative pool has one thread per core, and the test runner starts every test at
/// once: a few tests blocked in `waitUntilExit()` on those threads stall every other test's tasks,
/// the handlers of the servers under test included, for as long as the processes run. Timeouts in
/// unrelated tests then fire on a loaded machine. Waiting here costs a thread, never the pool.
public func onOwnThread<T: Sendable, Failure: Error>(
    _ body: @escaping @Sendable () throws(Failure) -> T
) async throws(Failure) -> T {
    let result: Result<T, Failure> = await withCheckedContinuation { continuation in
        let thread = Thread {
            continuation.resume(returning: Result { () throws(Failure) -> T in try body() })
        }
        thread.start()
    }
    return try result.get()
}
