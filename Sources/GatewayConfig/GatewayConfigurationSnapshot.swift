public import Configuration
import GatewayEventLoop


/// A swift-configuration snapshot of one version of the gateway's file, so that `ReloadingFileProvider` can
/// watch it (swift-configuration's own `YAMLSnapshot` cannot hold lists of mappings such as `providers`).
///
/// A file that fails validation still makes a snapshot, holding the problems: the reloading provider then
/// hands it to watchers, which report it and keep running on the previous configuration, instead of the
/// failure being logged only at debug level inside the provider.
///
/// Key lookups see the effective configuration flattened into keys such as `server.port`,
/// `providers.<name>.timeoutMs` or `clients.<id>.rateLimit.burst` (effective values, defaults applied);
/// secrets are marked secret. Lookups in an invalid snapshot throw its `ConfigurationErrors`.
public final class GatewayConfigurationSnapshot: Sendable {
    public struct ParsingOptions: FileParsingOptions {
        /// How problems name the file.
        public var fileName: String
        /// Source of `${NAME}` values and of `$GATEWAY_CURSOR_SECRET`.
        public var environment: [String: String]

        public init(fileName: String = "config.yaml", environment: [String: String] = ConfigLoader.processEnvironment) {
            self.fileName = fileName
            self.environment = environment
        }

        public static var `default`: Self { Self() }
    }

    public let providerName: String
    /// The validated configuration, or every problem the file has.
    public let result: Result<GatewayConfiguration, ConfigurationErrors>
    private let values: InMemoryProvider

    public init(result: Result<GatewayConfiguration, ConfigurationErrors>, providerName: String = "GatewayConfiguration") {
        self.result = result
        self.providerName = providerName
        switch result {
        case .success(let configuration):
            self.values = InMemoryProvider(name: providerName, values: Self.flattened(configuration))
        case .failure:
            self.values = InMemoryProvider(name: providerName, values: [:])
        }
    }

    public var configuration: GatewayConfiguration? {
        try? result.get()
    }

    static func flattened(_ configuration: GatewayConfiguration) -> [AbsoluteConfigKey: ConfigValue] {
        var values: [AbsoluteConfigKey: ConfigValue] = [:]
        func set(_ key: [String], _ content: ConfigContent, secret: Bool = false) {
            values[AbsoluteConfigKey(key)] = ConfigValue(content, isSecret: secret)
        }
        let server = configuration.server
        set(["server", "host"], .string(server.host))
        set(["server", "port"], .int(server.port))
        set(["server", "workers"], .int(server.workers))
        set(["server", "maxConnections"], .int(server.maxConnections))
        set(["server", "maxHeaderBytes"], .int(server.maxHeaderBytes))
        set(["server", "maxHeaderFields"], .int(server.maxHeaderFields))
        set(["server", "maxBodyBytes"], .int(server.maxBodyBytes))
        set(["server", "maxResponseBytes"], .int(server.maxResponseBytes))
        set(["server", "headerTimeoutMs"], .int(server.headerTimeout.wholeMilliseconds))
        set(["server", "idleTimeoutMs"], .int(server.idleTimeout.wholeMilliseconds))
        set(["server", "writeTimeoutMs"], .int(server.writeTimeout.wholeMilliseconds))
        set(["server", "requestTimeoutMs"], .int(server.requestTimeout.wholeMilliseconds))
        set(["server", "shutdownGraceMs"], .int(server.shutdownGrace.wholeMilliseconds))
        set(["server", "trustedProxies"], .stringArray(server.trustedProxies.map(\.description)))

        set(["auth", "mode"], .string(configuration.auth.mode.rawValue))
        if let secret = configuration.auth.cursorSecret {
            set(["auth", "cursorSecret"], .string(secret), secret: true)
        }

        let cache = configuration.cache
        set(["cache", "maxBytes"], .int(cache.maxBytes))
        set(["cache", "listTTLMs"], .int(cache.listTTL.wholeMilliseconds))
        set(["cache", "activeDetailTTLMs"], .int(cache.activeDetailTTL.wholeMilliseconds))
        set(["cache", "terminalDetailTTLMs"], .int(cache.terminalDetailTTL.wholeMilliseconds))
        set(["cache", "staleIfErrorMs"], .int(cache.staleIfError.wholeMilliseconds))
        set(["cache", "indexMaxBytes"], .int(cache.indexMaxBytes))

        set(["rateLimit", "default", "requestsPerSecond"], .double(configuration.rateLimit.default.requestsPerSecond))
        set(["rateLimit", "default", "burst"], .int(configuration.rateLimit.default.burst))
        set(["rateLimit", "default", "upstreamCallsPerMinute"], .int(configuration.rateLimit.default.upstreamCallsPerMinute))
        set(["rateLimit", "maxUpstreamCallsPerRequest"], .int(configuration.rateLimit.maxUpstreamCallsPerRequest))
        set(["rateLimit", "unauthenticated", "requestsPerSecond"], .double(configuration.rateLimit.unauthenticated.requestsPerSecond))
        set(["rateLimit", "unauthenticated", "burst"], .int(configuration.rateLimit.unauthenticated.burst))

        let providerNames = configuration.providers.map(\.name)
        set(["providers"], .stringArray(providerNames))
        for provider in configuration.providers {
            let prefix = ["providers", provider.name]
            set(prefix + ["type"], .string(provider.type.rawValue))
            set(prefix + ["baseURL"], .string(provider.baseURL))
            set(prefix + ["credential"], .string(provider.credential), secret: true)
            set(prefix + ["timeoutMs"], .int(provider.timeout.wholeMilliseconds))
            set(prefix + ["maxConcurrency"], .int(provider.maxConcurrency))
            set(prefix + ["requestsPerSecond"], .double(provider.requestsPerSecond))
            set(prefix + ["requestsPerMinute"], .int(provider.requestsPerMinute))
            if provider.type == .kapso {
                set(prefix + ["workflowIds"], .stringArray(provider.workflowIds))
            }
            if let orgId = provider.orgId {
                set(prefix + ["orgId"], .string(orgId))
            }
            if provider.type == .kaizen {
                set(prefix + ["maxListAnswerBytes"], .int(provider.maxListAnswerBytes))
            }
            set(prefix + ["allowInsecureUpstream"], .bool(provider.allowInsecureUpstream))
        }

        set(["clients"], .stringArray(configuration.clients.map(\.id)))
        for client in configuration.clients {
            let prefix = ["clients", client.id]
            let policy = configuration.effectiveRateLimit(for: client)
            set(prefix + ["keySHA256"], .string(client.keySHA256))
            set(prefix + ["rateLimit", "requestsPerSecond"], .double(policy.requestsPerSecond))
            set(prefix + ["rateLimit", "burst"], .int(policy.burst))
            set(prefix + ["rateLimit", "upstreamCallsPerMinute"], .int(policy.upstreamCallsPerMinute))
            set(prefix + ["providers"], .stringArray(client.providers ?? providerNames))
            for (provider, credential) in client.credentials {
                set(prefix + ["credentials", provider], .string(credential), secret: true)
            }
        }
        return values
    }
}

extension GatewayConfigurationSnapshot: FileConfigSnapshot {
    public convenience init(data: RawSpan, providerName: String, parsingOptions: ParsingOptions) {
        let bytes = data.withUnsafeBytes { Array($0) }
        let result: Result<GatewayConfiguration, ConfigurationErrors>
        do throws(ConfigurationErrors) {
            result = .success(
                try ConfigLoader.load(
                    bytes: bytes,
                    fileName: parsingOptions.fileName,
                    environment: ConfigLoader.environmentProvider(parsingOptions.environment)
                )
            )
        } catch {
            result = .failure(error)
        }
        self.init(result: result, providerName: providerName)
    }

    public func value(forKey key: AbsoluteConfigKey, type: ConfigType) throws -> LookupResult {
        if case .failure(let errors) = result {
            throw errors
        }
        return try values.value(forKey: key, type: type)
    }

    public var description: String {
        switch result {
        case .success(let configuration):
            "\(providerName)[\(configuration.providers.count) providers, \(configuration.clients.count) clients]"
        case .failure(let errors):
            "\(providerName)[invalid: \(errors.problems.count) problems]"
        }
    }

    /// Secrets redacted.
    public var debugDescription: String {
        switch result {
        case .success(let configuration): configuration.redactedDescription()
        case .failure(let errors): errors.description
        }
    }
}
