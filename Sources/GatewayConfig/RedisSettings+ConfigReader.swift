import GatewayRedis

// The `redis` section: its keys and ranges. Absent, the gateway is a single node.

extension RedisSettings {
    static let configKeys = ["url", "timeoutMs", "keyPrefix"]

    static func read(_ fields: ConfigFieldReader.Fields?, with reader: inout ConfigFieldReader) -> RedisSettings? {
        guard let fields else { return nil }
        let defaultTimeout = RedisClientConfiguration.defaultCommandTimeout
        let timeout = reader.duration(fields, "timeoutMs", milliseconds: 1...60_000, default: defaultTimeout)
        var keyPrefix = Self.defaultKeyPrefix
        if let text = reader.string(fields, "keyPrefix") {
            // Printable ASCII without spaces: keys are logged and typed into redis-cli.
            if text.utf8.count <= 64, text.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
                keyPrefix = text
            } else {
                reader.report(fields.path("keyPrefix"), fields.line(of: "keyPrefix"),
                              "must be at most 64 printable ASCII characters without spaces, got \(ConfigFieldReader.quoted(text))")
            }
        }
        guard let url = reader.requiredString(fields, "url") else { return nil }
        do {
            return RedisSettings(endpoint: try RedisEndpoint(url: url), timeout: timeout, keyPrefix: keyPrefix)
        } catch {
            // The parser's reasons never quote the URL, which may hold a password.
            let reason = if case .invalidURL(let reason) = error { reason } else { error.description }
            reader.report(fields.path("url"), fields.line(of: "url"), "must be redis://[[user]:password@]host[:port][/db]: \(reason)")
            return nil
        }
    }
}
