import Configuration
import Yams

/// Walks a composed YAML document (Yams nodes keep line numbers and lists of mappings) and builds a
/// `GatewayConfiguration`, collecting every problem on the way instead of stopping at the first.
///
/// Values are read by their text after `${NAME}` substitution, whatever YAML would have typed them
/// (`port: "8080"` and `port: ${PORT}` are both an integer). An explicit null (`key:` with nothing, `~`,
/// `null`) is "no value" for a scalar or a list, and an empty section for a mapping such as `server:`.
struct ConfigurationValidator {
    let fileName: String
    let substitution: VariableSubstitution
    let environment: EnvironmentVariablesProvider
    private(set) var problems: [ConfigProblem] = []
    /// Substituted values and how the file wrote them: a variable may hold a secret even where the key is not
    /// a secret one (`baseURL: https://host/?token=${KEY}`), so messages show the text as written.
    private var textAsWritten: [String: String] = [:]

    init(fileName: String, environment: EnvironmentVariablesProvider) {
        self.fileName = fileName
        self.environment = environment
        self.substitution = VariableSubstitution(environment: environment)
    }

    // MARK: - Document

    mutating func validate(root: Node?) -> GatewayConfiguration? {
        let rootFields: Fields
        if let root, !Self.isNull(root) {
            guard let fields = fields(of: root, at: "", allowed: Keys.top) else { return nil }
            rootFields = fields
        } else {
            rootFields = Fields(path: "", line: nil, entries: [])
        }

        let server = serverSettings(section(rootFields, "server", allowed: Keys.server))
        let auth = authSettings(section(rootFields, "auth", allowed: Keys.auth))
        let cache = cacheSettings(section(rootFields, "cache", allowed: Keys.cache))
        let rateLimit = rateLimitSettings(section(rootFields, "rateLimit", allowed: Keys.rateLimit))
        let providers = providerList(rootFields)
        let clients = clientList(rootFields, providers: providers, defaultRateLimit: rateLimit.default)
        // A mistyped auth.mode is reported on its own; it may well have meant `none`.
        let modeIsBroken = problems.contains { $0.key == "auth.mode" }
        if auth.mode == .apiKey, !modeIsBroken, clients.settings?.isEmpty == true {
            report(
                "clients",
                rootFields["clients"] == nil ? nil : rootFields.line(of: "clients"),
                "must list at least one client when auth.mode is apiKey (auth.mode none is for demos)"
            )
        }

        guard problems.isEmpty, let providerSettings = providers.settings, let clientSettings = clients.settings else {
            return nil
        }
        return GatewayConfiguration(
            server: server,
            auth: auth,
            cache: cache,
            rateLimit: rateLimit,
            clients: clientSettings,
            providers: providerSettings
        )
    }

    // MARK: - Sections

    private mutating func serverSettings(_ fields: Fields?) -> ServerSettings {
        let defaults = ServerSettings()
        guard let fields else { return defaults }
        var server = defaults
        if let host = string(fields, "host") {
            if Self.isValidHost(host) {
                server.host = host
            } else {
                report(fields.path("host"), fields.line(of: "host"),
                       "must be an IP address or a host name, got \(shown(host))")
            }
        }
        server.port = integer(fields, "port", 0...65535, default: defaults.port)
        server.workers = integer(fields, "workers", 0...1024, default: defaults.workers)
        server.maxConnections = integer(fields, "maxConnections", 1...1_000_000, default: defaults.maxConnections)
        server.maxHeaderBytes = integer(fields, "maxHeaderBytes", 1024...1_048_576, default: defaults.maxHeaderBytes)
        server.maxHeaderFields = integer(fields, "maxHeaderFields", 1...10_000, default: defaults.maxHeaderFields)
        server.maxBodyBytes = integer(fields, "maxBodyBytes", 0...67_108_864, default: defaults.maxBodyBytes)
        server.maxResponseBytes = integer(fields, "maxResponseBytes", 65_536...1_073_741_824, default: defaults.maxResponseBytes)
        server.headerTimeoutMs = integer(fields, "headerTimeoutMs", 1...600_000, default: defaults.headerTimeoutMs)
        server.idleTimeoutMs = integer(fields, "idleTimeoutMs", 1...3_600_000, default: defaults.idleTimeoutMs)
        server.writeTimeoutMs = integer(fields, "writeTimeoutMs", 1...600_000, default: defaults.writeTimeoutMs)
        server.requestTimeoutMs = integer(fields, "requestTimeoutMs", 1...3_600_000, default: defaults.requestTimeoutMs)
        server.shutdownGraceMs = integer(fields, "shutdownGraceMs", 0...600_000, default: defaults.shutdownGraceMs)
        if let items = stringList(fields, "trustedProxies") {
            var ranges: [CIDRRange] = []
            for item in items {
                do throws(CIDRParseError) {
                    ranges.append(try CIDRRange(item.text))
                } catch {
                    report(item.path, item.line, "\(shown(item.text)) \(error.reason)")
                }
            }
            server.trustedProxies = ranges
        }
        return server
    }

    private mutating func authSettings(_ fields: Fields?) -> AuthSettings {
        var auth = AuthSettings()
        if let fields {
            if let mode: AuthMode = enumeration(fields, "mode") {
                auth.mode = mode
            }
            if fields["cursorSecret"] != nil {
                if let secret = string(fields, "cursorSecret") {
                    if let problem = Self.cursorSecretProblem(secret) {
                        report(fields.path("cursorSecret"), fields.line(of: "cursorSecret"), problem)
                    } else {
                        auth.cursorSecret = secret
                        auth.cursorSecretSource = .configuration
                    }
                }
                return auth
            }
        }
        // The contract's fallback, read the swift-configuration way: key `gateway.cursorSecret` maps to the
        // environment variable GATEWAY_CURSOR_SECRET.
        let environmentReader = ConfigReader(provider: environment)
        if let secret = environmentReader.string(forKey: "gateway.cursorSecret", isSecret: true), !secret.isEmpty {
            if let problem = Self.cursorSecretProblem(secret) {
                report("auth.cursorSecret", nil, "taken from $\(AuthSettings.cursorSecretEnvironmentVariable): \(problem)")
            } else {
                auth.cursorSecret = secret
                auth.cursorSecretSource = .environment
            }
        }
        return auth
    }

    private mutating func cacheSettings(_ fields: Fields?) -> CacheSettings {
        let defaults = CacheSettings()
        guard let fields else { return defaults }
        let day = 86_400_000
        return CacheSettings(
            maxBytes: integer(fields, "maxBytes", 0...68_719_476_736, default: defaults.maxBytes),
            listTTLMs: integer(fields, "listTTLMs", 0...day, default: defaults.listTTLMs),
            activeDetailTTLMs: integer(fields, "activeDetailTTLMs", 0...day, default: defaults.activeDetailTTLMs),
            terminalDetailTTLMs: integer(fields, "terminalDetailTTLMs", 0...day, default: defaults.terminalDetailTTLMs),
            staleIfErrorMs: integer(fields, "staleIfErrorMs", 0...day, default: defaults.staleIfErrorMs),
            indexMaxBytes: integer(fields, "indexMaxBytes", 1_048_576...68_719_476_736, default: defaults.indexMaxBytes)
        )
    }

    private mutating func rateLimitSettings(_ fields: Fields?) -> RateLimitSettings {
        let defaults = RateLimitSettings()
        guard let fields else { return defaults }
        var settings = defaults
        settings.maxUpstreamCallsPerRequest = integer(
            fields, "maxUpstreamCallsPerRequest", 1...100_000, default: defaults.maxUpstreamCallsPerRequest)
        if let policyFields = section(fields, "default", allowed: Keys.rateLimitPolicy) {
            settings.default = rateLimitPolicy(policyFields, inheriting: defaults.default)
        }
        // Requests refused before authentication make no upstream calls: no call budget here.
        if let policyFields = section(fields, "unauthenticated", allowed: Keys.requestRateLimitPolicy) {
            settings.unauthenticated = rateLimitPolicy(policyFields, inheriting: defaults.unauthenticated)
        }
        return settings
    }

    /// Every key is optional; a missing one comes from `inheriting`.
    private mutating func rateLimitPolicy(_ fields: Fields, inheriting base: RateLimitPolicy) -> RateLimitPolicy {
        RateLimitPolicy(
            requestsPerSecond: number(fields, "requestsPerSecond", atMost: 1_000_000, default: base.requestsPerSecond),
            burst: integer(fields, "burst", 1...1_000_000, default: base.burst),
            upstreamCallsPerMinute: integer(
                fields, "upstreamCallsPerMinute", 1...60_000_000, default: base.upstreamCallsPerMinute)
        )
    }

    // MARK: - Providers

    /// `names` holds every well-formed provider name, also of entries with other problems, so that client
    /// references to them are not reported as unknown on top.
    struct ProviderList {
        var settings: [ProviderSettings]?
        var names: [String]
    }

    private mutating func providerList(_ root: Fields) -> ProviderList {
        guard let node = root["providers"] else {
            report("providers", nil, "is required: list at least one provider (name, type, baseURL, credential)")
            return ProviderList(settings: nil, names: [])
        }
        guard let items = list(node, at: "providers", line: root.line(of: "providers"), expecting: "a list of providers")
        else {
            return ProviderList(settings: nil, names: [])
        }
        if items.isEmpty {
            report("providers", root.line(of: "providers"), "must list at least one provider")
        }
        var settings: [ProviderSettings] = []
        var names: [String] = []
        var firstDefinition: [String: (path: String, line: Int?)] = [:]
        var complete = true
        for (index, item) in items.enumerated() {
            let path = "providers[\(index)]"
            let parsed = provider(item, at: path)
            if let name = parsed.name {
                if let first = firstDefinition[name] {
                    report("\(path).name", parsed.nameLine,
                           "duplicate provider name \(shown(name)) (also \(first.path)\(Self.lineSuffix(first.line)))")
                } else {
                    firstDefinition[name] = (path, parsed.nameLine)
                    names.append(name)
                }
            }
            if let provider = parsed.settings { settings.append(provider) } else { complete = false }
        }
        return ProviderList(settings: complete ? settings : nil, names: names)
    }

    private mutating func provider(_ node: Node, at path: String) -> (name: String?, nameLine: Int?, settings: ProviderSettings?) {
        guard let entries = mappingEntries(node, at: path, line: node.mark?.line, expecting: "a provider mapping")
        else {
            return (nil, nil, nil)
        }
        // The type decides which keys are allowed, so it is read before the keys are checked.
        let typeNode = entries.first { $0.key == "type" }
        var type: ProviderType?
        if let typeNode {
            type = enumerationValue(typeNode.value, at: "\(path).type", line: typeNode.value.mark?.line)
        }
        var allowed = Keys.providerCommon
        var misplaced: [String: String] = [:]
        for candidate in ProviderType.allCases {
            let specific = Keys.providerSpecific(candidate)
            if type == nil || type == candidate {
                allowed += specific
            } else {
                for key in specific {
                    misplaced[key] = "applies only to providers of type \(candidate.rawValue), this one is \(type?.rawValue ?? "")"
                }
            }
        }
        let fields = checkedFields(entries, path: path, line: node.mark?.line, allowed: allowed, misplaced: misplaced)
        if typeNode == nil {
            report(fields.path("type"), fields.line, "is required: one of \(Self.choices(ProviderType.self))")
        }

        var name: String?
        if let text = requiredString(fields, "name") {
            if Self.isToken(text, maximumLength: 64) {
                name = text
            } else {
                report(fields.path("name"), fields.line(of: "name"),
                       "must be 1 to 64 letters, digits, \".\", \"_\" or \"-\" (it is the prefix of execution ids, \"<name>:<id>\"), got \(shown(text))")
            }
        }
        var baseURL: String?
        if let text = requiredString(fields, "baseURL") {
            switch Self.normalizedBaseURL(text, shown: shown(text)) {
            case .success(let url): baseURL = url
            case .failure(let problem): report(fields.path("baseURL"), fields.line(of: "baseURL"), problem.message)
            }
        }
        let allowInsecureUpstream = boolean(fields, "allowInsecureUpstream", default: ProviderSettings.Defaults.allowInsecureUpstream)
        if let baseURL, !allowInsecureUpstream, Self.isCleartextToRemoteHost(baseURL) {
            report(fields.path("baseURL"), fields.line(of: "baseURL"),
                   "is http:// to a host that is not loopback: the credential would cross the network in clear; use https://, or set allowInsecureUpstream: true on this provider")
        }
        var credential: String?
        if let text = requiredString(fields, "credential") {
            if let problem = Self.secretTextProblem(text) {
                report(fields.path("credential"), fields.line(of: "credential"), problem)
            } else {
                credential = text
            }
        }
        let timeoutMs = integer(fields, "timeoutMs", 1...600_000, default: ProviderSettings.Defaults.timeoutMs)
        let maxConcurrency = integer(fields, "maxConcurrency", 1...1024, default: ProviderSettings.Defaults.maxConcurrency)
        let requestsPerSecond = number(
            fields, "requestsPerSecond", atMost: 100_000, default: ProviderSettings.Defaults.requestsPerSecond)
        let requestsPerMinute = integer(fields, "requestsPerMinute", 0...100_000, default: ProviderSettings.Defaults.requestsPerMinute)
        var workflowIds: [String] = []
        if let items = stringList(fields, "workflowIds") {
            var seen: Set<String> = []
            for item in items {
                if !Self.isIdentifier(item.text) {
                    report(item.path, item.line, "must be 1 to 128 letters, digits, \".\", \"_\", \"~\" or \"-\", got \(shown(item.text))")
                } else if !seen.insert(item.text).inserted {
                    report(item.path, item.line, "duplicate workflow id \(shown(item.text))")
                } else {
                    workflowIds.append(item.text)
                }
            }
        }
        var orgId: String?
        if let text = string(fields, "orgId") {
            if Self.isIdentifier(text) {
                orgId = text
            } else {
                report(fields.path("orgId"), fields.line(of: "orgId"),
                       "must be 1 to 128 letters, digits, \".\", \"_\", \"~\" or \"-\", got \(shown(text))")
            }
        }
        let maxListAnswerBytes = integer(
            fields, "maxListAnswerBytes", 1...Int.max, default: ProviderSettings.Defaults.maxListAnswerBytes)
        guard let name, let type, let baseURL, let credential else {
            return (name, fields.line(of: "name"), nil)
        }
        let settings = ProviderSettings(
            name: name,
            type: type,
            baseURL: baseURL,
            credential: credential,
            timeoutMs: timeoutMs,
            maxConcurrency: maxConcurrency,
            requestsPerSecond: requestsPerSecond,
            requestsPerMinute: requestsPerMinute,
            workflowIds: workflowIds,
            orgId: orgId,
            maxListAnswerBytes: maxListAnswerBytes,
            allowInsecureUpstream: allowInsecureUpstream
        )
        return (name, fields.line(of: "name"), settings)
    }

    // MARK: - Clients

    struct ClientList {
        var settings: [ClientSettings]?
    }

    private mutating func clientList(_ root: Fields, providers: ProviderList, defaultRateLimit: RateLimitPolicy) -> ClientList {
        guard let node = root["clients"] else { return ClientList(settings: []) }
        guard let items = list(node, at: "clients", line: root.line(of: "clients"), expecting: "a list of clients") else {
            return ClientList(settings: nil)
        }
        var settings: [ClientSettings] = []
        var complete = true
        var firstWithID: [String: (path: String, line: Int?)] = [:]
        var firstWithKey: [String: (path: String, id: String?)] = [:]
        for (index, item) in items.enumerated() {
            let path = "clients[\(index)]"
            let parsed = client(item, at: path, providers: providers, defaultRateLimit: defaultRateLimit)
            if let id = parsed.id {
                if let first = firstWithID[id] {
                    report("\(path).id", parsed.idLine,
                           "duplicate client id \(shown(id)) (also \(first.path)\(Self.lineSuffix(first.line)))")
                } else {
                    firstWithID[id] = (path, parsed.idLine)
                }
            }
            if let key = parsed.keySHA256 {
                if let first = firstWithKey[key] {
                    let owner = first.id.map { " (id \(shown($0)))" } ?? ""
                    report("\(path).keySHA256", parsed.keyLine,
                           "the same key hash as \(first.path)\(owner); every client needs its own key")
                } else {
                    firstWithKey[key] = (path, parsed.id)
                }
            }
            if let client = parsed.settings { settings.append(client) } else { complete = false }
        }
        return ClientList(settings: complete ? settings : nil)
    }

    private mutating func client(
        _ node: Node,
        at path: String,
        providers: ProviderList,
        defaultRateLimit: RateLimitPolicy
    ) -> (id: String?, idLine: Int?, keySHA256: String?, keyLine: Int?, settings: ClientSettings?) {
        guard let entries = mappingEntries(node, at: path, line: node.mark?.line, expecting: "a client mapping") else {
            return (nil, nil, nil, nil, nil)
        }
        let fields = checkedFields(entries, path: path, line: node.mark?.line, allowed: Keys.client, misplaced: [:])
        var complete = true

        var id: String?
        if let text = requiredString(fields, "id") {
            if !Self.isToken(text, maximumLength: 64) {
                report(fields.path("id"), fields.line(of: "id"),
                       "must be 1 to 64 letters, digits, \".\", \"_\" or \"-\", got \(shown(text))")
            } else if text == "anonymous" {
                report(fields.path("id"), fields.line(of: "id"),
                       "\"anonymous\" is reserved for the client of auth.mode none; choose another id")
            } else {
                id = text
            }
        }
        var keySHA256: String?
        if let text = requiredString(fields, "keySHA256") {
            if text.count == 64, text.unicodeScalars.allSatisfy(\.isHexDigit) {
                keySHA256 = text.lowercased()
            } else {
                // The value is not echoed: a raw API key pasted here by mistake must not reach the logs.
                report(fields.path("keySHA256"), fields.line(of: "keySHA256"),
                       "must be the SHA-256 of the client's key as 64 hexadecimal characters, got \(text.count) characters (value not shown; store the hash, e.g. printf %s \"$KEY\" | sha256sum)")
            }
        }
        var rateLimit: RateLimitPolicy?
        if let policyFields = section(fields, "rateLimit", allowed: Keys.rateLimitPolicy) {
            rateLimit = rateLimitPolicy(policyFields, inheriting: defaultRateLimit)
        }

        var allowedProviders: [String]?
        if let items = stringList(fields, "providers") {
            if items.isEmpty {
                report(fields.path("providers"), fields.line(of: "providers"),
                       "must name at least one provider (leave the key out to allow all)")
                complete = false
            }
            var names: [String] = []
            for item in items {
                if let problem = Self.unknownProviderProblem(item.text, shown: shown(item.text), known: providers.names) {
                    report(item.path, item.line, problem)
                } else if names.contains(item.text) {
                    report(item.path, item.line, "names provider \(shown(item.text)) twice")
                } else {
                    names.append(item.text)
                }
            }
            allowedProviders = names
        }

        var credentials: [String: String] = [:]
        if let credentialFields = section(fields, "credentials", allowed: nil) {
            for entry in credentialFields.entries {
                let entryPath = credentialFields.path(entry.key)
                if let problem = Self.unknownProviderProblem(entry.key, shown: Self.quoted(entry.key), known: providers.names) {
                    report(entryPath, entry.keyLine, problem)
                    continue
                }
                if let allowedProviders, !allowedProviders.contains(entry.key) {
                    report(entryPath, entry.keyLine,
                           "this client may not use provider \(Self.quoted(entry.key)) (it is not in \(fields.path("providers")))")
                    continue
                }
                guard let secret = text(of: entry.value, at: entryPath, line: entry.value.mark?.line,
                                        expecting: "a credential string")
                else { continue }
                if let problem = Self.secretTextProblem(secret) {
                    report(entryPath, entry.value.mark?.line, problem)
                } else {
                    credentials[entry.key] = secret
                }
            }
        }

        guard complete, let id, let keySHA256 else {
            return (id, fields.line(of: "id"), keySHA256, fields.line(of: "keySHA256"), nil)
        }
        let settings = ClientSettings(
            id: id,
            keySHA256: keySHA256,
            rateLimit: rateLimit,
            providers: allowedProviders,
            credentials: credentials
        )
        return (id, fields.line(of: "id"), keySHA256, fields.line(of: "keySHA256"), settings)
    }

    // MARK: - Mappings

    struct Entry {
        var key: String
        var keyLine: Int?
        var value: Node
    }

    /// The keys of one mapping that passed the unknown-key check.
    struct Fields {
        var pathPrefix: String
        var line: Int?
        var entries: [Entry]

        init(path: String, line: Int?, entries: [Entry]) {
            self.pathPrefix = path
            self.line = line
            self.entries = entries
        }

        subscript(key: String) -> Node? {
            entries.first { $0.key == key }?.value
        }

        func path(_ key: String) -> String {
            pathPrefix.isEmpty ? key : "\(pathPrefix).\(key)"
        }

        /// The line of the key, else of the mapping (where a missing key would go).
        func line(of key: String) -> Int? {
            entries.first { $0.key == key }?.keyLine ?? line
        }
    }

    private mutating func fields(of node: Node, at path: String, allowed: [String]) -> Fields? {
        guard let entries = mappingEntries(node, at: path, line: node.mark?.line, expecting: "a mapping of sections") else {
            return nil
        }
        return checkedFields(entries, path: path, line: node.mark?.line, allowed: allowed, misplaced: [:])
    }

    /// The pairs of a mapping node; reports a node that is not a mapping, and keys that are not plain text.
    private mutating func mappingEntries(_ node: Node, at path: String, line: Int?, expecting: String) -> [Entry]? {
        guard case .mapping(let mapping) = node else {
            report(path, line, Self.isNull(node) ? "has no value; expected \(expecting)" : "must be \(expecting), got \(Self.kind(node))")
            return nil
        }
        var entries: [Entry] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let scalar) = keyNode else {
                report(path, keyNode.mark?.line, "has a key that is \(Self.kind(keyNode)); keys must be plain names")
                continue
            }
            entries.append(Entry(key: scalar.string, keyLine: keyNode.mark?.line, value: value))
        }
        return entries
    }

    private mutating func checkedFields(
        _ entries: [Entry],
        path: String,
        line: Int?,
        allowed: [String],
        misplaced: [String: String]
    ) -> Fields {
        var kept: [Entry] = []
        for entry in entries {
            let entryPath = path.isEmpty ? entry.key : "\(path).\(entry.key)"
            if allowed.contains(entry.key) {
                kept.append(entry)
            } else if let reason = misplaced[entry.key] {
                report(entryPath, entry.keyLine, reason)
            } else if let suggestion = KeySuggestion.closest(to: entry.key, among: allowed) {
                report(entryPath, entry.keyLine, "unknown key \(Self.quoted(entry.key)); did you mean \(Self.quoted(suggestion))?")
            } else {
                report(entryPath, entry.keyLine,
                       "unknown key \(Self.quoted(entry.key)); known keys here: \(allowed.joined(separator: ", "))")
            }
        }
        return Fields(path: path, line: line, entries: kept)
    }

    // MARK: - Values

    /// A nested mapping's fields, checked against `allowed` unless it is `nil` (a map with free keys);
    /// `nil` when absent or broken (reported). Null is an empty section.
    private mutating func section(_ parent: Fields, _ key: String, allowed: [String]?) -> Fields? {
        guard let node = parent[key] else { return nil }
        let path = parent.path(key)
        let line = parent.line(of: key)
        if Self.isNull(node) {
            return Fields(path: path, line: line, entries: [])
        }
        guard let entries = mappingEntries(node, at: path, line: line, expecting: "a mapping") else { return nil }
        guard let allowed else { return Fields(path: path, line: line, entries: entries) }
        return checkedFields(entries, path: path, line: line, allowed: allowed, misplaced: [:])
    }

    /// The substituted text of a scalar; `nil` (reported) for anything else or a failed substitution.
    private mutating func text(of node: Node, at path: String, line: Int?, expecting: String) -> String? {
        guard case .scalar(let scalar) = node else {
            report(path, line, "must be \(expecting), got \(Self.kind(node))")
            return nil
        }
        if Self.isNull(node) {
            report(path, line, "has no value; expected \(expecting)")
            return nil
        }
        switch substitution.substitute(scalar.string) {
        case .substituted(let text):
            if text != scalar.string {
                textAsWritten[text] = scalar.string
            }
            return text
        case .failed(let failures):
            for failure in failures { report(path, line, failure.message) }
            return nil
        }
    }

    /// Messages about strings never quote the value; callers that know it is not secret may.
    private mutating func string(_ fields: Fields, _ key: String) -> String? {
        guard let node = fields[key] else { return nil }
        return text(of: node, at: fields.path(key), line: node.mark?.line ?? fields.line(of: key), expecting: "a string")
    }

    private mutating func requiredString(_ fields: Fields, _ key: String) -> String? {
        guard fields[key] != nil else {
            report(fields.path(key), fields.line, "is required")
            return nil
        }
        guard let text = string(fields, key) else { return nil }
        if text.isEmpty {
            report(fields.path(key), fields.line(of: key), "must not be empty")
            return nil
        }
        return text
    }

    private mutating func integer(_ fields: Fields, _ key: String, _ range: ClosedRange<Int>, default defaultValue: Int) -> Int {
        guard let node = fields[key] else { return defaultValue }
        let path = fields.path(key)
        let line = node.mark?.line ?? fields.line(of: key)
        let expectation = "an integer between \(range.lowerBound) and \(range.upperBound)"
        guard let text = text(of: node, at: path, line: line, expecting: expectation) else {
            return defaultValue
        }
        guard let value = Self.parseInteger(text), range.contains(value) else {
            report(path, line, "must be \(expectation), got \(shown(text))")
            return defaultValue
        }
        return value
    }

    private mutating func boolean(_ fields: Fields, _ key: String, default defaultValue: Bool) -> Bool {
        guard let node = fields[key] else { return defaultValue }
        let path = fields.path(key)
        let line = node.mark?.line ?? fields.line(of: key)
        guard let text = text(of: node, at: path, line: line, expecting: "true or false") else { return defaultValue }
        switch text {
        case "true": return true
        case "false": return false
        default:
            report(path, line, "must be true or false, got \(shown(text))")
            return defaultValue
        }
    }

    /// A finite decimal number greater than 0 and at most `maximum`.
    private mutating func number(_ fields: Fields, _ key: String, atMost maximum: Double, default defaultValue: Double) -> Double {
        guard let node = fields[key] else { return defaultValue }
        let path = fields.path(key)
        let line = node.mark?.line ?? fields.line(of: key)
        let expectation = "a number greater than 0 and at most \(Self.format(maximum))"
        guard let text = text(of: node, at: path, line: line, expecting: expectation) else {
            return defaultValue
        }
        guard let value = Self.parseDecimal(text), value > 0, value <= maximum else {
            report(path, line, "must be \(expectation), got \(shown(text))")
            return defaultValue
        }
        return value
    }

    private mutating func enumeration<Value: RawRepresentable & CaseIterable>(_ fields: Fields, _ key: String) -> Value?
    where Value.RawValue == String {
        guard let node = fields[key] else { return nil }
        return enumerationValue(node, at: fields.path(key), line: node.mark?.line ?? fields.line(of: key))
    }

    private mutating func enumerationValue<Value: RawRepresentable & CaseIterable>(_ node: Node, at path: String, line: Int?) -> Value?
    where Value.RawValue == String {
        let choices = Self.choices(Value.self)
        guard let text = text(of: node, at: path, line: line, expecting: "one of \(choices)") else {
            return nil
        }
        if let value = Value(rawValue: text) { return value }
        var message = "must be one of \(choices), got \(shown(text))"
        if let suggestion = KeySuggestion.closest(to: text, among: Value.allCases.map(\.rawValue)) {
            message += "; did you mean \(Self.quoted(suggestion))?"
        }
        report(path, line, message)
        return nil
    }

    struct ListItem {
        var text: String
        var path: String
        var line: Int?
    }

    /// A list of scalars; `nil` when absent or not a list. Broken items are reported and left out.
    private mutating func stringList(_ fields: Fields, _ key: String) -> [ListItem]? {
        guard let node = fields[key] else { return nil }
        let path = fields.path(key)
        guard let nodes = list(node, at: path, line: node.mark?.line ?? fields.line(of: key), expecting: "a list of strings") else {
            return nil
        }
        var items: [ListItem] = []
        for (index, item) in nodes.enumerated() {
            let itemPath = "\(path)[\(index)]"
            guard let text = text(of: item, at: itemPath, line: item.mark?.line, expecting: "a string") else {
                continue
            }
            items.append(ListItem(text: text, path: itemPath, line: item.mark?.line))
        }
        return items
    }

    private mutating func list(_ node: Node, at path: String, line: Int?, expecting: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            if Self.isNull(node) {
                report(path, line, "has no value; expected \(expecting) (write [] for an empty list)")
            } else {
                report(path, line, "must be \(expecting), got \(Self.kind(node))")
            }
            return nil
        }
        return Array(sequence)
    }

    /// A value for a message, quoted; when it came from `${...}` the unexpanded text.
    private func shown(_ value: String) -> String {
        if let written = textAsWritten[value] {
            return "\(Self.quoted(written)) (variables not expanded here)"
        }
        return Self.quoted(value)
    }

    private mutating func report(_ key: String, _ line: Int?, _ message: String) {
        problems.append(ConfigProblem(file: fileName, key: key, line: line, message: message))
    }
}
