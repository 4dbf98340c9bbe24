import GatewayEventLoop
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Time as the resilience layer sees it. Injected so that backoff, pacing, pauses and the circuit
/// breaker can be tested on a fake clock without real sleeps.
public protocol UpstreamClock: Sendable {
    /// Monotonic nanoseconds; only differences are meaningful.
    func now() -> UInt64
    /// Seconds since the Unix epoch, used only to turn an HTTP-date `Retry-After` into a delay.
    func unixTimeSeconds() -> Int64
    /// Returns once `now() >= deadline`; throws when the calling task is cancelled first.
    func sleep(until deadline: UInt64) async throws(CancellationError)
}

/// The process's monotonic and wall clocks, sleeping with `Task.sleep`.
public struct SystemUpstreamClock: UpstreamClock {
    public init() {}

    public func now() -> UInt64 { monotonicNanoseconds() }

    public func unixTimeSeconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec)
    }

    public func sleep(until deadline: UInt64) async throws(CancellationError) {
        let current = now()
        guard deadline > current else {
            if Task.isCancelled { throw CancellationError() }
            return
        }
        do {
            try await Task.sleep(nanoseconds: deadline - current)
        } catch {
            throw CancellationError()
        }
    }
}

