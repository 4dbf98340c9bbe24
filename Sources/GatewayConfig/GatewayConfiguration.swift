public import GatewayHTTP
public import GatewayProviders
public import GatewayServer
public import GatewayRedis
import GatewayUpstream

// The typed gateway configuration. docs/configuration.md lists every key with its default and
// allowed values; DocumentationTests keeps that page in step with the validator's keys and with
// the defaults a minimal file really gets.
//
// A setting that a runtime type also has takes that type's default (`HTTPServerConfiguration`,
// `HTTPParserLimits`, `ProviderCachePolicy`, `UpstreamPolicy`): one default per setting, which the
// validator reads too. Durations are `Duration`; the file writes them as whole milliseconds (`…Ms`).

/// The whole configuration of one gateway process.
public struct GatewayConfiguration: Sendable, Equatable {
    public var server: ServerSettings
    public var auth: AuthSettings
    public var cache: CacheSettings
    public var rateLimit: RateLimitSettings
    public var clients: [ClientSettings]
    public var providers: [ProviderSettings]
    /// Shared state across replicas; nil runs the gateway as a single node with everything in process.
    public var redis: RedisSettings?

    public init(
        server: ServerSettings = ServerSettings(),
        auth: AuthSettings = AuthSettings(),
        cache: CacheSettings = CacheSettings(),
        rateLimit: RateLimitSettings = RateLimitSettings(),
        clients: [ClientSettings] = [],
        providers: [ProviderSettings],
        redis: RedisSettings? = nil
    ) {
        self.server = server
        self.auth = auth
        self.cache = cache
        self.rateLimit = rateLimit
        self.clients = clients
        self.providers = providers
        self.redis = redis
    }

    public func provider(named name: String) -> ProviderSettings? {
        providers.first { $0.name == name }
    }

    public func client(withID id: String) -> ClientSettings? {
        clients.first { $0.id == id }
    }

    /// The client's own limit, else `rateLimit.default`.
    public func effectiveRateLimit(for client: ClientSettings) -> ClientRateLimit {
        client.rateLimit ?? rateLimit.default
    }

    /// Top-level sections that differ from `previous` and that a running gateway cannot apply without a restart.
    /// `clients` and `rateLimit` are absent from the answer: those are the hot-reloadable parts.
    public func sectionsRequiringRestart(comparedTo previous: GatewayConfiguration) -> [String] {
        var sections: [String] = []
        if server != previous.server { sections.append("server") }
        if auth != previous.auth { sections.append("auth") }
        if cache != previous.cache { sections.append("cache") }
        if providers != previous.providers { sections.append("providers") }
        if redis != previous.redis { sections.append("redis") }
        return sections
    }
}

public struct ServerSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// Event loops; 0 = one per core.
    public var workers: Int
    public var maxConnections: Int
    public var maxHeaderBytes: Int
    public var maxHeaderFields: Int
    public var maxBodyBytes: Int
    /// The cap on a rendered `GET /executions` page; a page that would pass it is refused with a
    /// problem instead (`include=raw,detail` on 100 items can reach many megabytes).
    public var maxResponseBytes: Int
    public var headerTimeout: Duration
    public var idleTimeout: Duration
    /// Extension: a response not written whole within this long closes the connection.
    public var writeTimeout: Duration
    /// Extension: the deadline of a request's upstream work (waiting for a provider's slot included);
    /// below nginx's default 60 s `proxy_read_timeout`, so the gateway answers first. The server
    /// has no such deadline of its own, so this default lives here.
    public var requestTimeout: Duration
    public var shutdownGrace: Duration
    /// `X-Forwarded-For` is believed only from peers inside one of these ranges.
    public var trustedProxies: [CIDRRange]

    public static let defaultTrustedProxies: [CIDRRange] = [
        CIDRRange(maskingHostBitsOf: [127, 0, 0, 1], prefixLength: 32),
        CIDRRange(maskingHostBitsOf: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], prefixLength: 128),
    ]

    public init(
        host: String = HTTPServerConfiguration().host,
        port: Int = HTTPServerConfiguration().port,
        workers: Int = HTTPServerConfiguration().workers,
        maxConnections: Int = HTTPServerConfiguration().maxConnections,
        maxHeaderBytes: Int = HTTPParserLimits().maxHeaderBytes,
        maxHeaderFields: Int = HTTPParserLimits().maxHeaderFields,
        maxBodyBytes: Int = HTTPParserLimits().maxBodyBytes,
        maxResponseBytes: Int = 8_388_608,
        headerTimeout: Duration = HTTPServerConfiguration().headerTimeout,
        idleTimeout: Duration = HTTPServerConfiguration().idleTimeout,
        writeTimeout: Duration = HTTPServerConfiguration().writeTimeout,
        requestTimeout: Duration = .seconds(50),
        shutdownGrace: Duration = HTTPServerConfiguration().shutdownGrace,
        trustedProxies: [CIDRRange] = ServerSettings.defaultTrustedProxies
    ) {
        self.host = host
        self.port = port
        self.workers = workers
        self.maxConnections = maxConnections
        self.maxHeaderBytes = maxHeaderBytes
        self.maxHeaderFields = maxHeaderFields
        self.maxBodyBytes = maxBodyBytes
        self.maxResponseBytes = maxResponseBytes
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
        self.writeTimeout = writeTimeout
        self.requestTimeout = requestTimeout
        self.shutdownGrace = shutdownGrace
        self.trustedProxies = trustedProxies
    }

    /// Whether `X-Forwarded-For` from this peer address may be believed.
    public func isTrustedProxy(_ address: String) -> Bool {
        CIDRRange.any(of: trustedProxies, contains: address)
    }
}

public enum AuthMode: String, Sendable, Equatable, CaseIterable {
    /// Clients authenticate with `Authorization: Bearer <key>` or `X-API-Key: <key>`.
    case apiKey
    /// Everyone is client `anonymous` (demo only).
    case none
}

/// Where `AuthSettings.cursorSecret` came from.
public enum CursorSecretSource: String, Sendable, Equatable {
    /// `auth.cursorSecret` in the file (possibly via `${...}`).
    case configuration
    /// The file has no `auth.cursorSecret`; `$GATEWAY_CURSOR_SECRET` was set.
    case environment
    /// Neither: the app must generate a random secret per process (cursors then die with the process and do
    /// not work across replicas) and warn at start.
    case perProcessRandom
}

public struct AuthSettings: Sendable, Equatable {
    public var mode: AuthMode
    /// HMAC key for cursors; `nil` exactly when `cursorSecretSource == .perProcessRandom`.
    public var cursorSecret: String?
    public var cursorSecretSource: CursorSecretSource

    /// The environment variable consulted when the file has no `auth.cursorSecret`.
    public static let cursorSecretEnvironmentVariable = "GATEWAY_CURSOR_SECRET"
    public static let minimumCursorSecretLength = 16

    public init(mode: AuthMode = .apiKey, cursorSecret: String? = nil, cursorSecretSource: CursorSecretSource? = nil) {
        self.mode = mode
        self.cursorSecret = cursorSecret
        self.cursorSecretSource = cursorSecretSource ?? (cursorSecret == nil ? .perProcessRandom : .configuration)
    }
}

/// Where replicas keep what they share (client limits, upstream budgets, index syncs, the L2 cache).
public struct RedisSettings: Sendable, Equatable {
    /// Parsed from `redis://[[user]:password@]host[:port][/db]`; its password is a secret.
    public var endpoint: RedisEndpoint
    /// Each Redis command's deadline.
    public var timeout: Duration
    /// Put before every key, so several gateways (or other users) can share one Redis.
    public var keyPrefix: String

    public static let defaultKeyPrefix = "eg:"

    public init(endpoint: RedisEndpoint, timeout: Duration = RedisClientConfiguration.defaultCommandTimeout, keyPrefix: String = Self.defaultKeyPrefix) {
        self.endpoint = endpoint
        self.timeout = timeout
        self.keyPrefix = keyPrefix
    }
}

public struct CacheSettings: Sendable, Equatable {
    public var maxBytes: Int
    /// The runtime's `ProviderCachePolicy` (what each TTL covers is documented there).
    public var listTTL: Duration
    public var activeDetailTTL: Duration
    public var terminalDetailTTL: Duration
    public var staleIfError: Duration
    /// The bound of all provider indexes together (estimated bytes); least recently used whole
    /// indexes are dropped past it.
    public var indexMaxBytes: Int

    public init(
        maxBytes: Int = 67_108_864,
        listTTL: Duration = ProviderCachePolicy().listTTL,
        activeDetailTTL: Duration = ProviderCachePolicy().activeDetailTTL,
        terminalDetailTTL: Duration = ProviderCachePolicy().terminalDetailTTL,
        staleIfError: Duration = ProviderCachePolicy().staleIfError,
        indexMaxBytes: Int = 268_435_456
    ) {
        self.maxBytes = maxBytes
        self.listTTL = listTTL
        self.activeDetailTTL = activeDetailTTL
        self.terminalDetailTTL = terminalDetailTTL
        self.staleIfError = staleIfError
        self.indexMaxBytes = indexMaxBytes
    }
}

/// A client's limits as configured: one token bucket for its requests (refills at
/// `requestsPerSecond`, holds at most `burst`), and a second one for the upstream calls its requests
/// cause: `upstreamCallsPerMinute`, all of which may be spent at once after a quiet minute. The
/// runtime turns each bucket into a `GatewayRateLimit.ClientRateLimit`.
public struct ClientRateLimit: Sendable, Equatable {
    public var requestsPerSecond: Double
    public var burst: Int
    public var upstreamCallsPerMinute: Int

    public init(requestsPerSecond: Double, burst: Int, upstreamCallsPerMinute: Int = 1200) {
        self.requestsPerSecond = requestsPerSecond
        self.burst = burst
        self.upstreamCallsPerMinute = upstreamCallsPerMinute
    }
}

public struct RateLimitSettings: Sendable, Equatable {
    /// Applies to every client without its own `rateLimit`.
    public var `default`: ClientRateLimit
    /// Per client address, for requests refused before authentication (a missing or unknown key):
    /// whoever has no key cannot spend a client's budget, but is not free either.
    public var unauthenticated: ClientRateLimit
    /// Upstream calls one request may cause; a filter scan that would pass it stops early.
    public var maxUpstreamCallsPerRequest: Int

    public init(
        default defaultPolicy: ClientRateLimit = ClientRateLimit(requestsPerSecond: 20, burst: 40),
        unauthenticated: ClientRateLimit = ClientRateLimit(requestsPerSecond: 10, burst: 20),
        maxUpstreamCallsPerRequest: Int = 200
    ) {
        self.default = defaultPolicy
        self.unauthenticated = unauthenticated
        self.maxUpstreamCallsPerRequest = maxUpstreamCallsPerRequest
    }
}

public struct ClientSettings: Sendable, Equatable {
    public var id: String
    /// Lowercase hex SHA-256 of the client's API key (64 characters).
    public var keySHA256: String
    /// `nil`: `rateLimit.default` applies.
    public var rateLimit: ClientRateLimit?
    /// Provider names this client may use; `nil`: all of them.
    public var providers: [String]?
    /// Per-provider upstream credential overrides, keyed by provider name. Secret.
    public var credentials: [String: String]

    public init(
        id: String,
        keySHA256: String,
        rateLimit: ClientRateLimit? = nil,
        providers: [String]? = nil,
        credentials: [String: String] = [:]
    ) {
        self.id = id
        self.keySHA256 = keySHA256
        self.rateLimit = rateLimit
        self.providers = providers
        self.credentials = credentials
    }

    public func mayUse(provider name: String) -> Bool {
        providers?.contains(name) ?? true
    }
}

public struct ProviderSettings: Sendable, Equatable {
    /// What clients see (`<name>:<id>`, `provider=`).
    public var name: String
    public var type: ProviderType
    /// Absolute http(s) URL without query or fragment, no trailing `/`.
    public var baseURL: String
    /// The upstream credential. Secret.
    public var credential: String
    public var timeout: Duration
    public var maxConcurrency: Int
    public var requestsPerSecond: Double
    /// Calls in any rolling 60 s, as Kapso counts its limit per key; 0 = no per-minute budget.
    public var requestsPerMinute: Int
    /// Kapso only; empty: discovered with `GET /workflows`.
    public var workflowIds: [String]
    /// B3OS only; sent as `X-Org-ID` when set.
    public var orgId: String?
    /// Kaizen only: the largest answer of `POST /executions/list` read (as a stream) to index
    /// the whole organisation.
    public var maxListAnswerBytes: Int
    /// Lets `baseURL` be `http://` on a host other than loopback (credentials then cross the network in clear).
    public var allowInsecureUpstream: Bool

    /// The default of every optional provider key: the initialiser's and the validator's. Those
    /// the upstream policy also has are its defaults.
    public enum Defaults {
        public static let timeout = UpstreamPolicy().timeout
        public static let maxConcurrency = UpstreamPolicy().maxConcurrency
        public static let requestsPerSecond = UpstreamPolicy.defaultRequestsPerSecond
        public static let requestsPerMinute = 0
        public static let allowInsecureUpstream = false
        public static let maxListAnswerBytes = KaizenProvider.defaultMaxListAnswerBytes
    }

    public init(
        name: String,
        type: ProviderType,
        baseURL: String,
        credential: String,
        timeout: Duration = Defaults.timeout,
        maxConcurrency: Int = Defaults.maxConcurrency,
        requestsPerSecond: Double = Defaults.requestsPerSecond,
        requestsPerMinute: Int = Defaults.requestsPerMinute,
        workflowIds: [String] = [],
        orgId: String? = nil,
        maxListAnswerBytes: Int = Defaults.maxListAnswerBytes,
        allowInsecureUpstream: Bool = Defaults.allowInsecureUpstream
    ) {
        self.name = name
        self.type = type
        self.baseURL = baseURL
        self.credential = credential
        self.timeout = timeout
        self.maxConcurrency = maxConcurrency
        self.requestsPerSecond = requestsPerSecond
        self.requestsPerMinute = requestsPerMinute
        self.workflowIds = workflowIds
        self.orgId = orgId
        self.maxListAnswerBytes = maxListAnswerBytes
        self.allowInsecureUpstream = allowInsecureUpstream
    }
}
