import Configuration
import Yams

/// Builds a `GatewayConfiguration` from a composed YAML document: each section is read by the rules
/// beside its settings type (`ServerSettings+ConfigReader.swift` and its siblings) through one
/// `ConfigFieldReader`; what spans sections (clients naming providers, apiKey needing clients) is
/// checked here.
struct ConfigurationValidator {
    /// The top-level sections, in the order the reference documents them.
    static let sections = ["server", "auth", "cache", "rateLimit", "clients", "providers", "redis"]

    private(set) var reader: ConfigFieldReader

    init(fileName: String, environment: EnvironmentVariablesProvider) {
        reader = ConfigFieldReader(fileName: fileName, environment: environment)
    }

    var problems: [ConfigProblem] { reader.problems }

    mutating func validate(root: Node?) -> GatewayConfiguration? {
        let rootFields: ConfigFieldReader.Fields
        if let root, !ConfigFieldReader.isNull(root) {
            guard let fields = reader.fields(of: root, at: "", allowed: Self.sections) else { return nil }
            rootFields = fields
        } else {
            rootFields = ConfigFieldReader.Fields(path: "", line: nil, entries: [])
        }

        let server = ServerSettings.read(reader.section(rootFields, "server", allowed: ServerSettings.configKeys), with: &reader)
        let auth = AuthSettings.read(reader.section(rootFields, "auth", allowed: AuthSettings.configKeys), with: &reader)
        let cache = CacheSettings.read(reader.section(rootFields, "cache", allowed: CacheSettings.configKeys), with: &reader)
        let rateLimit = RateLimitSettings.read(
            reader.section(rootFields, "rateLimit", allowed: RateLimitSettings.configKeys), with: &reader)
        let providers = ProviderSettings.readList(rootFields, with: &reader)
        let redis = RedisSettings.read(reader.section(rootFields, "redis", allowed: RedisSettings.configKeys), with: &reader)
        let clients = ClientSettings.readList(
            rootFields, providers: providers, defaultRateLimit: rateLimit.default, with: &reader)
        // A mistyped auth.mode is reported on its own; it may well have meant `none`.
        let modeIsBroken = reader.problems.contains { $0.key == "auth.mode" }
        if auth.mode == .apiKey, !modeIsBroken, clients.settings?.isEmpty == true {
            reader.report(
                "clients",
                rootFields["clients"] == nil ? nil : rootFields.line(of: "clients"),
                "must list at least one client when auth.mode is apiKey (auth.mode none is for demos)"
            )
        }

        guard reader.problems.isEmpty, let providerSettings = providers.settings, let clientSettings = clients.settings else {
            return nil
        }
        return GatewayConfiguration(
            server: server,
            auth: auth,
            cache: cache,
            rateLimit: rateLimit,
            clients: clientSettings,
            providers: providerSettings,
            redis: redis
        )
    }
}
