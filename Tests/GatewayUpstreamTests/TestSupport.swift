import GatewayHTTP
@testable import GatewayUpstream
import Logging
import Synchronization

/// A fake clock. In auto-advancing mode a sleep moves time to its deadline at once (and is
/// recorded), so sequential logic runs without real waiting; in manual mode sleeps suspend until
/// the test advances time past them.
final class TestClock: UpstreamClock {
    private struct Sleeper {
        let id: Int
        let deadline: UInt64
        let continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var now: UInt64
        var unixSeconds: Int64
        var sleepDeadlines: [UInt64] = []
        var sleepers: [Sleeper] = []
        var nextSleeperID = 0
        var cancelledBeforeRegistered = Set<Int>()
    }

    let autoAdvance: Bool
    private let state: Mutex<State>

    init(now: UInt64 = 1_000_000_000_000, unixSeconds: Int64 = 1_790_000_000, autoAdvance: Bool = true) {
        self.autoAdvance = autoAdvance
        state = Mutex(State(now: now, unixSeconds: unixSeconds))
    }

    func now() -> UInt64 { state.withLock { $0.now } }
    func unixTimeSeconds() -> Int64 { state.withLock { $0.unixSeconds } }

    /// Every deadline a sleep was asked for, in order.
    var sleepDeadlines: [UInt64] { state.withLock { $0.sleepDeadlines } }
    var pendingSleepers: Int { state.withLock { $0.sleepers.count } }

    func sleep(until deadline: UInt64) async throws(CancellationError) {
        if Task.isCancelled { throw CancellationError() }
        if autoAdvance {
            state.withLock { state in
                state.sleepDeadlines.append(deadline)
                if deadline > state.now {
                    state.unixSeconds += Int64((deadline - state.now) / 1_000_000_000)
                    state.now = deadline
                }
            }
            return
        }
        let id = state.withLock { state -> Int in
            state.nextSleeperID += 1
            state.sleepDeadlines.append(deadline)
            return state.nextSleeperID
        }
        let completed = await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let resumeNow: Bool? = state.withLock { state in
                    if state.cancelledBeforeRegistered.remove(id) != nil { return false }
                    if deadline <= state.now { return true }
                    state.sleepers.append(Sleeper(id: id, deadline: deadline, continuation: continuation))
                    return nil
                }
                if let resumeNow { continuation.resume(returning: resumeNow) }
            }
        } onCancel: {
            let sleeper: Sleeper? = state.withLock { state in
                if let index = state.sleepers.firstIndex(where: { $0.id == id }) {
                    return state.sleepers.remove(at: index)
                }
                state.cancelledBeforeRegistered.insert(id)
                return nil
            }
            sleeper?.continuation.resume(returning: false)
        }
        if !completed { throw CancellationError() }
    }

    func advance(by nanoseconds: UInt64) {
        let due: [Sleeper] = state.withLock { state in
            state.now += nanoseconds
            state.unixSeconds += Int64(nanoseconds / 1_000_000_000)
            let now = state.now
            let due = state.sleepers.filter { $0.deadline <= now }
            state.sleepers.removeAll { $0.deadline <= now }
            return due
        }
        for sleeper in due { sleeper.continuation.resume(returning: true) }
    }
}

/// A transport whose answers the test scripts: the policy under test is the endpoint's, not this.
final class ScriptedTransport: UpstreamTransport {
    typealias Handler = @Sendable (_ request: UpstreamRequest, _ index: Int) async throws(UpstreamError) -> UpstreamResponse

    private let handler: Handler
    private let recorded = Mutex<[UpstreamRequest]>([])
    private let inFlightCount = Atomic<Int>(0)

    init(_ handler: @escaping Handler) { self.handler = handler }

    /// Answers from `steps` in order, repeating the last one.
    convenience init(steps: [Result<UpstreamResponse, UpstreamError>]) {
        self.init { _, index throws(UpstreamError) in
            try steps[min(index, steps.count - 1)].get()
        }
    }

    var requests: [UpstreamRequest] { recorded.withLock { $0 } }
    var callCount: Int { recorded.withLock { $0.count } }
    var inFlight: Int { inFlightCount.load(ordering: .sequentiallyConsistent) }

    func execute(_ request: UpstreamRequest) async throws(UpstreamError) -> UpstreamResponse {
        let index = recorded.withLock { recorded in
            recorded.append(request)
            return recorded.count - 1
        }
        inFlightCount.add(1, ordering: .sequentiallyConsistent)
        defer { inFlightCount.subtract(1, ordering: .sequentiallyConsistent) }
        return try await handler(request, index)
    }
}

func response(_ status: Int, headers: HTTPHeaders = HTTPHeaders(), body: String = "") -> Result<UpstreamResponse, UpstreamError> {
    .success(UpstreamResponse(status: status, headers: headers, body: Array(body.utf8)))
}

/// Records every log event, rendered with its metadata, for assertions.
final class LogCapture: Sendable {
    private let lines = Mutex<[String]>([])

    var all: [String] { lines.withLock { $0 } }

    func append(_ line: String) { lines.withLock { $0.append(line) } }

    func logger(label: String = "test") -> Logger {
        var logger = Logger(label: label) { _ in CapturingLogHandler(capture: self) }
        logger.logLevel = .trace
        return logger
    }
}

struct CapturingLogHandler: LogHandler {
    let capture: LogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let rendered = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let error = event.error.map { " error=\(String(reflecting: $0))" } ?? ""
        capture.append("\(event.level) \(event.message) \(rendered)\(error)")
    }
}

func makeOptions(credentialKey: String = "cred-a", idempotent: Bool = true, requestId: String = "req-1") -> UpstreamCallOptions {
    UpstreamCallOptions(
        credentialKey: credentialKey, isIdempotent: idempotent, requestId: requestId,
        traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
}

func fastPolicy(
    maxRetries: Int = 2,
    requestsPerSecond: Double? = nil,
    timeout: UInt64 = 10_000_000_000
) -> UpstreamPolicy {
    UpstreamPolicy(
        timeout: .nanoseconds(timeout), requestsPerSecond: requestsPerSecond, maxRetries: maxRetries,
        retryBudgetRatio: 0.2, retryBudgetMinimumPerWindow: 100)
}

let millisecond: UInt64 = 1_000_000
let second: UInt64 = 1_000_000_000
