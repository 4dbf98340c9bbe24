import GatewayProviders
import Yams

// The `providers` section: its keys (some only for one provider type), ranges and rules.

extension ProviderSettings {
    static let commonConfigKeys = [
        "name", "type", "baseURL", "credential", "timeoutMs", "maxConcurrency", "requestsPerSecond", "requestsPerMinute",
        "allowInsecureUpstream",
    ]

    static func configKeys(specificTo type: ProviderType) -> [String] {
        switch type {
        case .kaizen: ["maxListAnswerBytes"]
        case .kapso: ["workflowIds"]
        case .b3os: ["orgId"]
        }
    }

    /// `names` holds every well-formed provider name, also of entries with other problems, so that client
    /// references to them are not reported as unknown on top.
    struct ConfigList {
        var settings: [ProviderSettings]?
        var names: [String]
    }

    /// `providers`: required, at least one, names unique.
    static func readList(_ root: ConfigFieldReader.Fields, with reader: inout ConfigFieldReader) -> ConfigList {
        guard let node = root["providers"] else {
            reader.report("providers", nil, "is required: list at least one provider (name, type, baseURL, credential)")
            return ConfigList(settings: nil, names: [])
        }
        guard let items = reader.list(node, at: "providers", line: root.line(of: "providers"), expecting: "a list of providers")
        else {
            return ConfigList(settings: nil, names: [])
        }
        if items.isEmpty {
            reader.report("providers", root.line(of: "providers"), "must list at least one provider")
        }
        var settings: [ProviderSettings] = []
        var names: [String] = []
        var firstDefinition: [String: (path: String, line: Int?)] = [:]
        var complete = true
        for (index, item) in items.enumerated() {
            let path = "providers[\(index)]"
            let parsed = read(item, at: path, with: &reader)
            if let name = parsed.name {
                if let first = firstDefinition[name] {
                    reader.report("\(path).name", parsed.nameLine,
                           "duplicate provider name \(reader.shown(name)) (also \(first.path)\(ConfigFieldReader.lineSuffix(first.line)))")
                } else {
                    firstDefinition[name] = (path, parsed.nameLine)
                    names.append(name)
                }
            }
            if let provider = parsed.settings { settings.append(provider) } else { complete = false }
        }
        return ConfigList(settings: complete ? settings : nil, names: names)
    }

    static func read(
        _ node: Node, at path: String, with reader: inout ConfigFieldReader
    ) -> (name: String?, nameLine: Int?, settings: ProviderSettings?) {
        guard let entries = reader.mappingEntries(node, at: path, line: node.mark?.line, expecting: "a provider mapping")
        else {
            return (nil, nil, nil)
        }
        // The type decides which keys are allowed, so it is read before the keys are checked.
        let typeNode = entries.first { $0.key == "type" }
        var type: ProviderType?
        if let typeNode {
            type = reader.enumerationValue(typeNode.value, at: "\(path).type", line: typeNode.value.mark?.line)
        }
        var allowed = commonConfigKeys
        var misplaced: [String: String] = [:]
        for candidate in ProviderType.allCases {
            let specific = configKeys(specificTo: candidate)
            if type == nil || type == candidate {
                allowed += specific
            } else {
                for key in specific {
                    misplaced[key] = "applies only to providers of type \(candidate.rawValue), this one is \(type?.rawValue ?? "")"
                }
            }
        }
        let fields = reader.checkedFields(entries, path: path, line: node.mark?.line, allowed: allowed, misplaced: misplaced)
        if typeNode == nil {
            reader.report(fields.path("type"), fields.line, "is required: one of \(ConfigFieldReader.choices(ProviderType.self))")
        }

        var name: String?
        if let text = reader.requiredString(fields, "name") {
            if ProviderName.isValid(text) {
                name = text
            } else {
                reader.report(fields.path("name"), fields.line(of: "name"),
                       "must be \(ProviderName.rule) (it is the prefix of execution ids, \"<name>:<id>\"), got \(reader.shown(text))")
            }
        }
        var baseURL: String?
        if let text = reader.requiredString(fields, "baseURL") {
            switch ConfigurationRules.normalizedBaseURL(text, shown: reader.shown(text)) {
            case .success(let url): baseURL = url
            case .failure(let problem): reader.report(fields.path("baseURL"), fields.line(of: "baseURL"), problem.message)
            }
        }
        var credential: String?
        if let text = reader.requiredString(fields, "credential") {
            if let problem = ConfigurationRules.secretTextProblem(text) {
                reader.report(fields.path("credential"), fields.line(of: "credential"), problem)
            } else {
                credential = text
            }
        }

        // Built even when a required key is broken, so that every optional key is still checked;
        // returned only when all of them are there. Each optional key is one line: a missing key
        // keeps the initialiser's default (ProviderSettings.Defaults).
        var settings = ProviderSettings(name: name ?? "", type: type ?? .kaizen, baseURL: baseURL ?? "", credential: credential ?? "")
        settings.allowInsecureUpstream = reader.boolean(fields, "allowInsecureUpstream", default: settings.allowInsecureUpstream)
        settings.timeout = reader.duration(fields, "timeoutMs", milliseconds: 1...600_000, default: settings.timeout)
        settings.maxConcurrency = reader.integer(fields, "maxConcurrency", 1...1024, default: settings.maxConcurrency)
        settings.requestsPerSecond = reader.number(fields, "requestsPerSecond", atMost: 100_000, default: settings.requestsPerSecond)
        settings.requestsPerMinute = reader.integer(fields, "requestsPerMinute", 0...100_000, default: settings.requestsPerMinute)
        settings.maxListAnswerBytes = reader.integer(fields, "maxListAnswerBytes", 1...Int.max, default: settings.maxListAnswerBytes)
        if let items = reader.stringList(fields, "workflowIds") {
            var seen: Set<String> = []
            for item in items {
                if !ConfigurationRules.isIdentifier(item.text) {
                    reader.report(item.path, item.line, "must be 1 to 128 letters, digits, \".\", \"_\", \"~\" or \"-\", got \(reader.shown(item.text))")
                } else if !seen.insert(item.text).inserted {
                    reader.report(item.path, item.line, "duplicate workflow id \(reader.shown(item.text))")
                } else {
                    settings.workflowIds.append(item.text)
                }
            }
        }
        if let text = reader.string(fields, "orgId") {
            if ConfigurationRules.isIdentifier(text) {
                settings.orgId = text
            } else {
                reader.report(fields.path("orgId"), fields.line(of: "orgId"),
                       "must be 1 to 128 letters, digits, \".\", \"_\", \"~\" or \"-\", got \(reader.shown(text))")
            }
        }

        if let baseURL, !settings.allowInsecureUpstream, ConfigurationRules.isCleartextToRemoteHost(baseURL) {
            reader.report(fields.path("baseURL"), fields.line(of: "baseURL"),
                   "is http:// to a host that is not loopback: the credential would cross the network in clear; use https://, or set allowInsecureUpstream: true on this provider")
        }
        guard name != nil, type != nil, baseURL != nil, credential != nil else {
            return (name, fields.line(of: "name"), nil)
        }
        return (name, fields.line(of: "name"), settings)
    }
}
