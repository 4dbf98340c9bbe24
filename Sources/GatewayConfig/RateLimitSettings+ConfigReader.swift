// The `rateLimit` section, and the policy mapping it shares with `clients[].rateLimit`.

extension RateLimitSettings {
    static let configKeys = ["default", "unauthenticated", "maxUpstreamCallsPerRequest"]
    /// A client's policy: its requests and the upstream calls they cause.
    static let policyConfigKeys = ["requestsPerSecond", "burst", "upstreamCallsPerMinute"]
    /// Requests refused before authentication make no upstream calls: no call budget.
    static let requestPolicyConfigKeys = ["requestsPerSecond", "burst"]

    static func read(_ fields: ConfigFieldReader.Fields?, with reader: inout ConfigFieldReader) -> RateLimitSettings {
        let defaults = RateLimitSettings()
        guard let fields else { return defaults }
        var settings = defaults
        settings.maxUpstreamCallsPerRequest = reader.integer(
            fields, "maxUpstreamCallsPerRequest", 1...100_000, default: defaults.maxUpstreamCallsPerRequest)
        if let policyFields = reader.section(fields, "default", allowed: policyConfigKeys) {
            settings.default = readPolicy(policyFields, inheriting: defaults.default, with: &reader)
        }
        // Requests refused before authentication make no upstream calls: no call budget here.
        if let policyFields = reader.section(fields, "unauthenticated", allowed: requestPolicyConfigKeys) {
            settings.unauthenticated = readPolicy(policyFields, inheriting: defaults.unauthenticated, with: &reader)
        }
        return settings
    }

    /// Every key is optional; a missing one comes from `inheriting`.
    static func readPolicy(
        _ fields: ConfigFieldReader.Fields, inheriting base: ClientRateLimit, with reader: inout ConfigFieldReader
    ) -> ClientRateLimit {
        ClientRateLimit(
            requestsPerSecond: reader.number(fields, "requestsPerSecond", atMost: 1_000_000, default: base.requestsPerSecond),
            burst: reader.integer(fields, "burst", 1...1_000_000, default: base.burst),
            upstreamCallsPerMinute: reader.integer(
                fields, "upstreamCallsPerMinute", 1...60_000_000, default: base.upstreamCallsPerMinute)
        )
    }
}
