import Yams

// The `clients` section: its keys and rules, and its references to providers.

extension ClientSettings {
    static let configKeys = ["id", "keySHA256", "rateLimit", "providers", "credentials"]

    struct ConfigList {
        var settings: [ClientSettings]?
    }

    /// `clients`: optional; ids and key hashes unique, provider names known.
    static func readList(
        _ root: ConfigFieldReader.Fields, providers: ProviderSettings.ConfigList, defaultRateLimit: ClientRateLimit,
        with reader: inout ConfigFieldReader
    ) -> ConfigList {
        guard let node = root["clients"] else { return ConfigList(settings: []) }
        guard let items = reader.list(node, at: "clients", line: root.line(of: "clients"), expecting: "a list of clients") else {
            return ConfigList(settings: nil)
        }
        var settings: [ClientSettings] = []
        var complete = true
        var firstWithID: [String: (path: String, line: Int?)] = [:]
        var firstWithKey: [String: (path: String, id: String?)] = [:]
        for (index, item) in items.enumerated() {
            let path = "clients[\(index)]"
            let parsed = read(item, at: path, providers: providers, defaultRateLimit: defaultRateLimit, with: &reader)
            if let id = parsed.id {
                if let first = firstWithID[id] {
                    reader.report("\(path).id", parsed.idLine,
                           "duplicate client id \(reader.shown(id)) (also \(first.path)\(ConfigFieldReader.lineSuffix(first.line)))")
                } else {
                    firstWithID[id] = (path, parsed.idLine)
                }
            }
            if let key = parsed.keySHA256 {
                if let first = firstWithKey[key] {
                    let owner = first.id.map { " (id \(reader.shown($0)))" } ?? ""
                    reader.report("\(path).keySHA256", parsed.keyLine,
                           "the same key hash as \(first.path)\(owner); every client needs its own key")
                } else {
                    firstWithKey[key] = (path, parsed.id)
                }
            }
            if let client = parsed.settings { settings.append(client) } else { complete = false }
        }
        return ConfigList(settings: complete ? settings : nil)
    }

    static func read(
        _ node: Node,
        at path: String,
        providers: ProviderSettings.ConfigList,
        defaultRateLimit: ClientRateLimit,
        with reader: inout ConfigFieldReader
    ) -> (id: String?, idLine: Int?, keySHA256: String?, keyLine: Int?, settings: ClientSettings?) {
        guard let entries = reader.mappingEntries(node, at: path, line: node.mark?.line, expecting: "a client mapping") else {
            return (nil, nil, nil, nil, nil)
        }
        let fields = reader.checkedFields(entries, path: path, line: node.mark?.line, allowed: configKeys, misplaced: [:])
        var complete = true

        var id: String?
        if let text = reader.requiredString(fields, "id") {
            if !ConfigurationRules.isToken(text, maximumLength: 64) {
                reader.report(fields.path("id"), fields.line(of: "id"),
                       "must be 1 to 64 letters, digits, \".\", \"_\" or \"-\", got \(reader.shown(text))")
            } else if text == "anonymous" {
                reader.report(fields.path("id"), fields.line(of: "id"),
                       "\"anonymous\" is reserved for the client of auth.mode none; choose another id")
            } else {
                id = text
            }
        }
        var keySHA256: String?
        if let text = reader.requiredString(fields, "keySHA256") {
            if text.count == 64, text.unicodeScalars.allSatisfy(\.isHexDigit) {
                keySHA256 = text.lowercased()
            } else {
                // The value is not echoed: a raw API key pasted here by mistake must not reach the logs.
                reader.report(fields.path("keySHA256"), fields.line(of: "keySHA256"),
                       "must be the SHA-256 of the client's key as 64 hexadecimal characters, got \(text.count) characters (value not shown; store the hash, e.g. printf %s \"$KEY\" | sha256sum)")
            }
        }
        var rateLimit: ClientRateLimit?
        if let policyFields = reader.section(fields, "rateLimit", allowed: RateLimitSettings.policyConfigKeys) {
            rateLimit = RateLimitSettings.readPolicy(policyFields, inheriting: defaultRateLimit, with: &reader)
        }

        var allowedProviders: [String]?
        if let items = reader.stringList(fields, "providers") {
            if items.isEmpty {
                reader.report(fields.path("providers"), fields.line(of: "providers"),
                       "must name at least one provider (leave the key out to allow all)")
                complete = false
            }
            var names: [String] = []
            for item in items {
                if let problem = ConfigurationRules.unknownProviderProblem(item.text, shown: reader.shown(item.text), known: providers.names) {
                    reader.report(item.path, item.line, problem)
                } else if names.contains(item.text) {
                    reader.report(item.path, item.line, "names provider \(reader.shown(item.text)) twice")
                } else {
                    names.append(item.text)
                }
            }
            allowedProviders = names
        }

        var credentials: [String: String] = [:]
        if let credentialFields = reader.section(fields, "credentials", allowed: nil) {
            for entry in credentialFields.entries {
                let entryPath = credentialFields.path(entry.key)
                if let problem = ConfigurationRules.unknownProviderProblem(entry.key, shown: ConfigFieldReader.quoted(entry.key), known: providers.names) {
                    reader.report(entryPath, entry.keyLine, problem)
                    continue
                }
                if let allowedProviders, !allowedProviders.contains(entry.key) {
                    reader.report(entryPath, entry.keyLine,
                           "this client may not use provider \(ConfigFieldReader.quoted(entry.key)) (it is not in \(fields.path("providers")))")
                    continue
                }
                guard let secret = reader.text(of: entry.value, at: entryPath, line: entry.value.mark?.line,
                                        expecting: "a credential string")
                else { continue }
                if let problem = ConfigurationRules.secretTextProblem(secret) {
                    reader.report(entryPath, entry.value.mark?.line, problem)
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
}
