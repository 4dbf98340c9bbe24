import GatewayEventLoop
extension GatewayConfiguration {
    /// The effective configuration (defaults filled in) as YAML, every secret (provider credentials, client
    /// credential overrides, the cursor secret) shown as `<redacted>`. For `check-config` and start-up logs.
    public func redactedDescription() -> String {
        var lines: [String] = []
        let redacted = "<redacted>"

        lines.append("server:")
        lines.append("  host: \(Self.yamlString(server.host))")
        lines.append("  port: \(server.port)")
        lines.append("  workers: \(server.workers)")
        lines.append("  maxConnections: \(server.maxConnections)")
        lines.append("  maxHeaderBytes: \(server.maxHeaderBytes)")
        lines.append("  maxHeaderFields: \(server.maxHeaderFields)")
        lines.append("  maxBodyBytes: \(server.maxBodyBytes)")
        lines.append("  maxResponseBytes: \(server.maxResponseBytes)")
        lines.append("  headerTimeoutMs: \(server.headerTimeout.wholeMilliseconds)")
        lines.append("  idleTimeoutMs: \(server.idleTimeout.wholeMilliseconds)")
        lines.append("  writeTimeoutMs: \(server.writeTimeout.wholeMilliseconds)")
        lines.append("  requestTimeoutMs: \(server.requestTimeout.wholeMilliseconds)")
        lines.append("  shutdownGraceMs: \(server.shutdownGrace.wholeMilliseconds)")
        lines.append("  trustedProxies: \(Self.yamlList(server.trustedProxies.map(\.description)))")

        lines.append("auth:")
        lines.append("  mode: \(auth.mode.rawValue)")
        switch auth.cursorSecretSource {
        case .configuration:
            lines.append("  cursorSecret: \(redacted)")
        case .environment:
            lines.append("  cursorSecret: \(redacted)   # from $\(AuthSettings.cursorSecretEnvironmentVariable)")
        case .perProcessRandom:
            lines.append("  # cursorSecret: not set; a random one per process (cursors do not survive a restart")
            lines.append("  # and do not work across replicas)")
        }

        lines.append("cache:")
        lines.append("  maxBytes: \(cache.maxBytes)")
        lines.append("  listTTLMs: \(cache.listTTL.wholeMilliseconds)")
        lines.append("  activeDetailTTLMs: \(cache.activeDetailTTL.wholeMilliseconds)")
        lines.append("  terminalDetailTTLMs: \(cache.terminalDetailTTL.wholeMilliseconds)")
        lines.append("  staleIfErrorMs: \(cache.staleIfError.wholeMilliseconds)")
        lines.append("  indexMaxBytes: \(cache.indexMaxBytes)")

        lines.append("rateLimit:")
        lines.append("  default: \(Self.yamlPolicy(rateLimit.default))")
        lines.append("  unauthenticated: \(Self.yamlPolicy(rateLimit.unauthenticated, withCallBudget: false))")
        lines.append("  maxUpstreamCallsPerRequest: \(rateLimit.maxUpstreamCallsPerRequest)")

        if clients.isEmpty {
            lines.append("clients: []")
        } else {
            lines.append("clients:")
        }
        for client in clients {
            lines.append("  - id: \(Self.yamlString(client.id))")
            lines.append("    keySHA256: \(client.keySHA256)")
            if let policy = client.rateLimit {
                lines.append("    rateLimit: \(Self.yamlPolicy(policy))")
            } else {
                lines.append("    # rateLimit: rateLimit.default")
            }
            if let allowed = client.providers {
                lines.append("    providers: \(Self.yamlList(allowed))")
            } else {
                lines.append("    # providers: all")
            }
            if !client.credentials.isEmpty {
                let entries = client.credentials.keys.sorted().map { "\(Self.yamlString($0)): \(redacted)" }
                lines.append("    credentials: {\(entries.joined(separator: ", "))}")
            }
        }

        lines.append("providers:")
        for provider in providers {
            lines.append("  - name: \(Self.yamlString(provider.name))")
            lines.append("    type: \(provider.type.rawValue)")
            lines.append("    baseURL: \(Self.yamlString(provider.baseURL))")
            lines.append("    credential: \(redacted)")
            lines.append("    timeoutMs: \(provider.timeout.wholeMilliseconds)")
            lines.append("    maxConcurrency: \(provider.maxConcurrency)")
            lines.append("    requestsPerSecond: \(ConfigFieldReader.format(provider.requestsPerSecond))")
            lines.append("    requestsPerMinute: \(provider.requestsPerMinute)")
            lines.append("    allowInsecureUpstream: \(provider.allowInsecureUpstream)")
            switch provider.type {
            case .kapso:
                lines.append("    workflowIds: \(Self.yamlList(provider.workflowIds))")
            case .b3os:
                if let orgId = provider.orgId {
                    lines.append("    orgId: \(Self.yamlString(orgId))")
                }
            case .kaizen:
                lines.append("    maxListAnswerBytes: \(provider.maxListAnswerBytes)")
            }
        }
        if let redis {
            lines.append("redis:")
            lines.append("  url: \(Self.yamlString(redis.endpoint.description))")
            lines.append("  timeoutMs: \(redis.timeout.wholeMilliseconds)")
            lines.append("  keyPrefix: \(Self.yamlString(redis.keyPrefix))")
        } else {
            lines.append("# redis: not set; a single node (limits, budgets, indexes and cache in this process)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func yamlPolicy(_ policy: ClientRateLimit, withCallBudget: Bool = true) -> String {
        "{requestsPerSecond: \(ConfigFieldReader.format(policy.requestsPerSecond)), burst: \(policy.burst)"
            + (withCallBudget ? ", upstreamCallsPerMinute: \(policy.upstreamCallsPerMinute)}" : "}")
    }

    private static func yamlList(_ items: [String]) -> String {
        "[" + items.map(yamlString).joined(separator: ", ") + "]"
    }

    /// Plain when that reads back as the same string, else double-quoted.
    private static func yamlString(_ text: String) -> String {
        let plainSafe = text.unicodeScalars.allSatisfy { $0.isASCIILetter || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) }
        let looksTyped = ["true", "false", "yes", "no", "on", "off", "null", "~"].contains(text.lowercased())
            || ConfigFieldReader.parseDecimal(text) != nil
        if plainSafe, !text.isEmpty, text.first != "-", text.first != ".", !looksTyped {
            return text
        }
        return ConfigFieldReader.quoted(text, limit: Int.max)
    }
}
