import Configuration
import GatewayEventLoop
import Yams

/// Reads typed values out of a composed YAML document (Yams nodes keep line numbers and lists of
/// mappings), collecting every problem on the way instead of stopping at the first; each problem
/// names the key path (`providers[1].timeoutMs`) and line. It knows no section: the rules of each
/// live beside its settings type (`ServerSettings+ConfigReader.swift` and its siblings).
///
/// Values are read by their text after `${NAME}` substitution, whatever YAML would have typed them
/// (`port: "8080"` and `port: ${PORT}` are both an integer). An explicit null (`key:` with nothing, `~`,
/// `null`) is "no value" for a scalar or a list, and an empty section for a mapping such as `server:`.
struct ConfigFieldReader {
    let fileName: String
    /// Source of `${NAME}` values and of environment fallbacks such as `$GATEWAY_CURSOR_SECRET`.
    let environment: EnvironmentVariablesProvider
    let substitution: VariableSubstitution
    private(set) var problems: [ConfigProblem] = []
    /// Substituted values and how the file wrote them: a variable may hold a secret even where the key is not
    /// a secret one (`baseURL: https://host/?token=${KEY}`), so messages show the text as written.
    private var textAsWritten: [String: String] = [:]

    init(fileName: String, environment: EnvironmentVariablesProvider) {
        self.fileName = fileName
        self.environment = environment
        self.substitution = VariableSubstitution(environment: environment)
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

    mutating func fields(of node: Node, at path: String, allowed: [String]) -> Fields? {
        guard let entries = mappingEntries(node, at: path, line: node.mark?.line, expecting: "a mapping of sections") else {
            return nil
        }
        return checkedFields(entries, path: path, line: node.mark?.line, allowed: allowed, misplaced: [:])
    }

    /// The pairs of a mapping node; reports a node that is not a mapping, and keys that are not plain text.
    mutating func mappingEntries(_ node: Node, at path: String, line: Int?, expecting: String) -> [Entry]? {
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

    mutating func checkedFields(
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
    mutating func section(_ parent: Fields, _ key: String, allowed: [String]?) -> Fields? {
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
    mutating func text(of node: Node, at path: String, line: Int?, expecting: String) -> String? {
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
    mutating func string(_ fields: Fields, _ key: String) -> String? {
        guard let node = fields[key] else { return nil }
        return text(of: node, at: fields.path(key), line: node.mark?.line ?? fields.line(of: key), expecting: "a string")
    }

    mutating func requiredString(_ fields: Fields, _ key: String) -> String? {
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

    mutating func integer(_ fields: Fields, _ key: String, _ range: ClosedRange<Int>, default defaultValue: Int) -> Int {
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

    /// A `…Ms` key: whole milliseconds within `range`, as a `Duration` (messages speak milliseconds,
    /// as the file does).
    mutating func duration(
        _ fields: Fields, _ key: String, milliseconds range: ClosedRange<Int>, default defaultValue: Duration
    ) -> Duration {
        guard fields[key] != nil else { return defaultValue }
        return .milliseconds(integer(fields, key, range, default: defaultValue.wholeMilliseconds))
    }

    mutating func boolean(_ fields: Fields, _ key: String, default defaultValue: Bool) -> Bool {
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
    mutating func number(_ fields: Fields, _ key: String, atMost maximum: Double, default defaultValue: Double) -> Double {
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

    mutating func enumeration<Value: RawRepresentable & CaseIterable>(_ fields: Fields, _ key: String) -> Value?
    where Value.RawValue == String {
        guard let node = fields[key] else { return nil }
        return enumerationValue(node, at: fields.path(key), line: node.mark?.line ?? fields.line(of: key))
    }

    mutating func enumerationValue<Value: RawRepresentable & CaseIterable>(_ node: Node, at path: String, line: Int?) -> Value?
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
    mutating func stringList(_ fields: Fields, _ key: String) -> [ListItem]? {
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

    mutating func list(_ node: Node, at path: String, line: Int?, expecting: String) -> [Node]? {
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
    func shown(_ value: String) -> String {
        if let written = textAsWritten[value] {
            return "\(Self.quoted(written)) (variables not expanded here)"
        }
        return Self.quoted(value)
    }

    mutating func report(_ key: String, _ line: Int?, _ message: String) {
        problems.append(ConfigProblem(file: fileName, key: key, line: line, message: message))
    }
}

// MARK: - Text

extension ConfigFieldReader {
    static func isNull(_ node: Node) -> Bool {
        guard case .scalar(let scalar) = node, scalar.style == .plain || scalar.style == .any else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    static func kind(_ node: Node) -> String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar: "a single value"
        case .alias: "an alias"
        }
    }

    static func choices<Value: RawRepresentable & CaseIterable>(_ type: Value.Type) -> String where Value.RawValue == String {
        Value.allCases.map(\.rawValue).joined(separator: ", ")
    }

    /// A decimal integer; `_` between digits is allowed (`67_108_864`).
    static func parseInteger(_ text: String) -> Int? {
        var digits = Substring(text)
        var sign = ""
        if let first = digits.first, first == "-" || first == "+" {
            sign = first == "-" ? "-" : ""
            digits = digits.dropFirst()
        }
        guard let first = digits.first, first.isASCIIDigit, let last = digits.last, last.isASCIIDigit,
            digits.allSatisfy({ $0.isASCIIDigit || $0 == "_" }), !digits.contains("__")
        else { return nil }
        return Int(sign + digits.filter { $0 != "_" })
    }

    /// A plain decimal number (`10`, `0.5`, `.5`, `1e3`); no hex, infinity or NaN.
    static func parseDecimal(_ text: String) -> Double? {
        let allowed = Set("0123456789.eE+-_")
        guard !text.isEmpty, text.allSatisfy({ allowed.contains($0) }), text.contains(where: \.isASCIIDigit) else {
            return nil
        }
        guard let value = Double(text.filter { $0 != "_" }), value.isFinite else { return nil }
        return value
    }

    static func format(_ number: Double) -> String {
        if number == number.rounded(), abs(number) < 1e15 {
            return String(Int(number))
        }
        return String(number)
    }

    /// `"text"` with control characters escaped (also valid as a YAML double-quoted scalar), cut at `limit`
    /// characters.
    static func quoted(_ text: String, limit: Int = 80) -> String {
        var output = "\""
        for scalar in text.unicodeScalars.prefix(limit) {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = String(scalar.value, radix: 16, uppercase: true)
                    output += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        if text.unicodeScalars.count > limit { output += "…" }
        return output + "\""
    }

    static func lineSuffix(_ line: Int?) -> String {
        line.map { " at line \($0)" } ?? ""
    }
}
