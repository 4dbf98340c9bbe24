import Synchronization

/// Why a client's upstream-call budget refused a call, in the terms of `RateLimit-*` headers.
public struct UpstreamCallBudgetRefusal: Sendable, Equatable {
    /// The budget's size (calls that may be made at once after a quiet minute).
    public var limit: Int
    /// Whole seconds until the budget is full again.
    public var resetSeconds: Int
    /// Whole seconds (at least 1) until one more call would be admitted.
    public var retryAfterSeconds: Int

    public init(limit: Int, resetSeconds: Int, retryAfterSeconds: Int) {
        self.limit = limit
        self.resetSeconds = resetSeconds
        self.retryAfterSeconds = max(1, retryAfterSeconds)
    }
}

/// One client's budget of upstream calls, as the rate-limiting layer hands it to the API: how
/// many calls one request may make, and the shared per-client bucket each call is charged to.
public struct UpstreamCallBudget: Sendable {
    public var maxCallsPerRequest: Int
    /// Takes one call from the client's bucket; nil when it was taken, the refusal otherwise.
    public var charge: @Sendable () async -> UpstreamCallBudgetRefusal?

    public init(maxCallsPerRequest: Int, charge: @escaping @Sendable () async -> UpstreamCallBudgetRefusal?) {
        self.maxCallsPerRequest = maxCallsPerRequest
        self.charge = charge
    }
}

/// The upstream calls one gateway request may still make: its own ceiling, and its client's
/// budget. Asked by the fetcher just before a call goes upstream, so an answer from cache or from
/// another request's identical call costs nothing.
public final class UpstreamCallAllowance: Sendable {
    private let budget: UpstreamCallBudget
    private let taken = Atomic<Int>(0)

    public init(_ budget: UpstreamCallBudget) {
        self.budget = budget
    }

    /// Calls granted so far.
    public var callsTaken: Int { taken.load(ordering: .relaxed) }

    /// Grants one call, or throws `.callCeilingReached` / `.callBudgetSpent` without spending anything.
    func take() async throws(ProviderError) {
        let ceiling = budget.maxCallsPerRequest
        var current = taken.load(ordering: .relaxed)
        while true {
            guard current < ceiling else { throw .callCeilingReached(ceiling: ceiling) }
            let (exchanged, original) = taken.compareExchange(
                expected: current, desired: current + 1, ordering: .relaxed)
            if exchanged { break }
            current = original
        }
        if let refusal = await budget.charge() {
            taken.subtract(1, ordering: .relaxed)
            throw .callBudgetSpent(refusal)
        }
    }
}
