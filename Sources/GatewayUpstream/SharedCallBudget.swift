/// A provider's call budgets kept with other gateway replicas (in Redis), so that N replicas
/// together stay inside `requestsPerSecond` and `requestsPerMinute`, and one replica's upstream
/// `Retry-After` pauses the credential on all of them.
///
/// Delays are relative to the instant the shared state judged them, so replicas never compare
/// clocks.
public protocol SharedCallBudget: Sendable {
    /// Reserves the earliest slot the budgets allow for one call to `endpoint`, unless it is more
    /// than `maxWaitNanoseconds` away (then nothing is taken). nil when the shared state cannot be
    /// reached: the endpoint then paces alone at `1/replicaCount` of its budgets.
    func reserve(
        endpoint: String, credentialKey: String, pacing: SharedPacing, maxWaitNanoseconds: UInt64
    ) async -> SharedCallReservation?

    /// Pauses calls with `credentialKey` on every replica for `nanoseconds` (never shortening a pause).
    func pause(endpoint: String, credentialKey: String, nanoseconds: UInt64) async

    /// Replicas sharing the budgets, as last known (at least 1).
    var replicaCount: Int { get }
}

/// An endpoint's budgets, as its pacer reads them.
public struct SharedPacing: Sendable, Hashable {
    /// Nanoseconds between calls; 0 is no per-second budget.
    public var intervalNanoseconds: UInt64
    /// How far ahead of the steady rate a burst may run.
    public var toleranceNanoseconds: UInt64
    /// Calls in any rolling 60 s; 0 is no such budget.
    public var perMinute: Int
}

public enum SharedCallReservation: Sendable, Hashable {
    /// Send after `delayNanoseconds`; the slot is taken. `callsLeftThisMinute`: what the
    /// per-minute budget still allows after it (nil without that budget).
    case slot(delayNanoseconds: UInt64, callsLeftThisMinute: Int?)
    /// No slot within the wait allowed; `minuteBudget` says whether the per-minute budget is why.
    case beyondDeadline(delayNanoseconds: UInt64, minuteBudget: Bool)
    /// A replica was told by the upstream to pause calls with this credential.
    case paused(remainingNanoseconds: UInt64)
}
