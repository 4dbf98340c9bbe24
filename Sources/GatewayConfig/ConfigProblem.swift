/// One thing wrong with a configuration file. Its text never contains the value of a credential, client
/// credential override or cursor secret (those read `<redacted>`).
public struct ConfigProblem: Sendable, Equatable, CustomStringConvertible {
    /// The file as the operator named it (or the `fileName` given for inline YAML).
    public var file: String
    /// Dotted path such as `providers[1].timeoutMs` or `clients[0].credentials.kaizen`; empty for the document.
    public var key: String
    /// 1-based line in `file`, when known.
    public var line: Int?
    public var message: String

    public init(file: String, key: String, line: Int?, message: String) {
        self.file = file
        self.key = key
        self.line = line
        self.message = message
    }

    /// `config/x.yaml:12: providers[1].timeoutMs: must be an integer between 1 and 600000, got "abc"`
    public var description: String {
        var text = file
        if let line { text += ":\(line)" }
        text += ": "
        if !key.isEmpty { text += "\(key): " }
        return text + message
    }
}

/// Every problem found in one configuration (never only the first).
public struct ConfigurationErrors: Error, Sendable, Equatable, CustomStringConvertible {
    /// In file order (problems without a line last).
    public var problems: [ConfigProblem]

    public init(problems: [ConfigProblem]) {
        self.problems = problems
    }

    /// One problem per line.
    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
