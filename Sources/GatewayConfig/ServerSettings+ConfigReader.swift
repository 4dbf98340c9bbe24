// The `server` section: its keys, ranges and rules.

extension ServerSettings {
    static let configKeys = [
        "host", "port", "workers", "maxConnections", "maxHeaderBytes", "maxHeaderFields", "maxBodyBytes",
        "maxResponseBytes", "headerTimeoutMs", "idleTimeoutMs", "writeTimeoutMs", "requestTimeoutMs", "shutdownGraceMs", "trustedProxies",
    ]

    /// Every key is optional; a missing one keeps the default.
    static func read(_ fields: ConfigFieldReader.Fields?, with reader: inout ConfigFieldReader) -> ServerSettings {
        let defaults = ServerSettings()
        guard let fields else { return defaults }
        var server = defaults
        if let host = reader.string(fields, "host") {
            if ConfigurationRules.isValidHost(host) {
                server.host = host
            } else {
                reader.report(fields.path("host"), fields.line(of: "host"),
                       "must be an IP address or a host name, got \(reader.shown(host))")
            }
        }
        server.port = reader.integer(fields, "port", 0...65535, default: defaults.port)
        server.workers = reader.integer(fields, "workers", 0...1024, default: defaults.workers)
        server.maxConnections = reader.integer(fields, "maxConnections", 1...1_000_000, default: defaults.maxConnections)
        server.maxHeaderBytes = reader.integer(fields, "maxHeaderBytes", 1024...1_048_576, default: defaults.maxHeaderBytes)
        server.maxHeaderFields = reader.integer(fields, "maxHeaderFields", 1...10_000, default: defaults.maxHeaderFields)
        server.maxBodyBytes = reader.integer(fields, "maxBodyBytes", 0...67_108_864, default: defaults.maxBodyBytes)
        server.maxResponseBytes = reader.integer(fields, "maxResponseBytes", 65_536...1_073_741_824, default: defaults.maxResponseBytes)
        server.headerTimeout = reader.duration(fields, "headerTimeoutMs", milliseconds: 1...600_000, default: defaults.headerTimeout)
        server.idleTimeout = reader.duration(fields, "idleTimeoutMs", milliseconds: 1...3_600_000, default: defaults.idleTimeout)
        server.writeTimeout = reader.duration(fields, "writeTimeoutMs", milliseconds: 1...600_000, default: defaults.writeTimeout)
        server.requestTimeout = reader.duration(fields, "requestTimeoutMs", milliseconds: 1...3_600_000, default: defaults.requestTimeout)
        server.shutdownGrace = reader.duration(fields, "shutdownGraceMs", milliseconds: 0...600_000, default: defaults.shutdownGrace)
        if let items = reader.stringList(fields, "trustedProxies") {
            var ranges: [CIDRRange] = []
            for item in items {
                do throws(CIDRParseError) {
                    ranges.append(try CIDRRange(item.text))
                } catch {
                    reader.report(item.path, item.line, "\(reader.shown(item.text)) \(error.reason)")
                }
            }
            server.trustedProxies = ranges
        }
        return server
    }
}
