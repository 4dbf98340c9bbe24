/// Where JSON work whose cost grows with its input runs: parsing an upstream answer, decoding it
/// into records, rendering a page that carries upstream records.
///
/// A request's task runs on its connection's event loop, and everything else that loop serves
/// waits while it computes: one 16 MiB upstream answer parsed there would stall hundreds of other
/// connections for a tenth of a second. Work above a small input size therefore moves to Swift's
/// global concurrent executor, a pool bounded at one thread per core, and the task comes back to
/// its loop afterwards. Below the bound the two hops would cost more than the work.
public enum BulkWork {
    /// Inputs up to this size are handled where the task runs (tens of microseconds at most).
    public static let inlineLimitBytes = 32 * 1024

    /// Runs `work` off the event loop when `inputBytes` passes `inlineLimitBytes`, else in place.
    public static func perform<Value, Failure: Error>(
        inputBytes: Int,
        _ work: () throws(Failure) -> Value
    ) async throws(Failure) -> Value {
        try await perform(offLoop: inputBytes > inlineLimitBytes, work)
    }

    /// Runs `work` off the event loop when `offLoop` says so (the caller knows the work is large
    /// before it has a size to give), else in place.
    public static func perform<Value, Failure: Error>(
        offLoop: Bool,
        _ work: () throws(Failure) -> Value
    ) async throws(Failure) -> Value {
        guard offLoop else { return try work() }
        return try await withTaskExecutorPreference(globalConcurrentExecutor) { () async throws(Failure) -> Value in
            try work()
        }
    }
}
