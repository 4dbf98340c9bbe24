import Yams

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// MARK: - Keys

extension ConfigurationValidator {
    enum Keys {
        static let top = ["server", "auth", "cache", "rateLimit", "clients", "providers"]
        static let server = [
            "host", "port", "workers", "maxConnections", "maxHeaderBytes", "maxHeaderFields", "maxBodyBytes",
            "maxResponseBytes", "headerTimeoutMs", "idleTimeoutMs", "writeTimeoutMs", "requestTimeoutMs", "shutdownGraceMs", "trustedProxies",
        ]
        static let auth = ["mode", "cursorSecret"]
        static let cache = ["maxBytes", "listTTLMs", "activeDetailTTLMs", "terminalDetailTTLMs", "staleIfErrorMs", "indexMaxBytes"]
        static let rateLimit = ["default", "unauthenticated", "maxUpstreamCallsPerRequest"]
        static let rateLimitPolicy = ["requestsPerSecond", "burst", "upstreamCallsPerMinute"]
        static let requestRateLimitPolicy = ["requestsPerSecond", "burst"]
        static let client = ["id", "keySHA256", "rateLimit", "providers", "credentials"]
        static let providerCommon = [
            "name", "type", "baseURL", "credential", "timeoutMs", "maxConcurrency", "requestsPerSecond", "requestsPerMinute",
            "allowInsecureUpstream",
        ]

        static func providerSpecific(_ type: ProviderType) -> [String] {
            switch type {
            case .kaizen: ["maxListAnswerBytes"]
            case .kapso: ["workflowIds"]
            case .b3os: ["orgId"]
            }
        }
    }
}

// MARK: - Text rules

extension ConfigurationValidator {
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

    static func isToken(_ text: String, maximumLength: Int) -> Bool {
        (1...maximumLength).contains(text.unicodeScalars.count)
            && text.unicodeScalars.allSatisfy { $0.isASCIILetter || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) }
    }

    static func isIdentifier(_ text: String) -> Bool {
        (1...128).contains(text.unicodeScalars.count)
            && text.unicodeScalars.allSatisfy { $0.isASCIILetter || ("0"..."9").contains($0) || "._~-".unicodeScalars.contains($0) }
    }

    static func isValidHost(_ text: String) -> Bool {
        if IPAddress.parse(text) != nil { return true }
        guard (1...253).contains(text.utf8.count) else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        // An all-numeric last label is a mistyped IP address, not a host name.
        if let last = labels.last, last.allSatisfy(\.isASCIIDigit) { return false }
        return labels.allSatisfy { label in
            (1...63).contains(label.utf8.count) && label.first != "-" && label.last != "-"
                && label.unicodeScalars.allSatisfy { $0.isASCIILetter || ("0"..."9").contains($0) || $0 == "-" }
        }
    }

    /// Why a secret's text cannot be used (it goes into HTTP headers); never mentions the value.
    static func secretTextProblem(_ text: String) -> String? {
        if text.isEmpty {
            return "must not be empty"
        }
        if text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) {
            return "must not contain control characters or line breaks (value <redacted>)"
        }
        if text.first?.isWhitespace == true || text.last?.isWhitespace == true {
            return "must not start or end with whitespace (value <redacted>)"
        }
        return nil
    }

    static func cursorSecretProblem(_ text: String) -> String? {
        if let problem = secretTextProblem(text) { return problem }
        if text.utf8.count < AuthSettings.minimumCursorSecretLength {
            return "must be at least \(AuthSettings.minimumCursorSecretLength) characters long (value <redacted>)"
        }
        return nil
    }

    static func unknownProviderProblem(_ name: String, shown: String, known: [String]) -> String? {
        guard !known.contains(name) else { return nil }
        var message = "unknown provider \(shown)"
        if let suggestion = KeySuggestion.closest(to: name, among: known) {
            message += "; did you mean \(quoted(suggestion))?"
        } else if !known.isEmpty {
            message += "; configured providers: \(known.joined(separator: ", "))"
        }
        return message
    }

    struct URLProblem: Error {
        var message: String
    }

    /// An absolute http(s) URL without user info, query or fragment, with trailing `/` removed.
    static func normalizedBaseURL(_ text: String, shown: String) -> Result<String, URLProblem> {
        let expectation = "must be an absolute http or https URL such as https://api.example.com/v1"
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased() else {
            return .failure(URLProblem(message: "\(expectation), got \(shown)"))
        }
        // Checked before anything echoes the text: user info may hold a password.
        if components.user != nil || components.password != nil {
            return .failure(URLProblem(message: "must not contain user information (put the secret in credential; value <redacted>)"))
        }
        guard scheme == "http" || scheme == "https" else {
            return .failure(URLProblem(message: "\(expectation), got \(shown)"))
        }
        guard let host = components.host, !host.isEmpty else {
            return .failure(URLProblem(message: "must include a host, got \(shown)"))
        }
        if components.query != nil {
            return .failure(URLProblem(message: "must not have a query (\"?...\"), got \(shown)"))
        }
        if components.fragment != nil {
            return .failure(URLProblem(message: "must not have a fragment (\"#...\"), got \(shown)"))
        }
        var normalized = text
        while normalized.hasSuffix("/") { normalized.removeLast() }
        return .success(normalized)
    }
}

extension ConfigurationValidator {
    /// Loopback hosts: traffic to them never leaves the machine, so `http://` is no exposure there.
    static let loopbackRanges: [CIDRRange] = [
        CIDRRange(maskingHostBitsOf: [127, 0, 0, 0], prefixLength: 8),
        CIDRRange(maskingHostBitsOf: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1], prefixLength: 128),
    ]

    /// Whether a (valid) base URL sends requests, and with them the credential, unencrypted to
    /// another machine: `http://` to any host but `localhost`, 127.0.0.0/8 or ::1.
    static func isCleartextToRemoteHost(_ baseURL: String) -> Bool {
        guard let components = URLComponents(string: baseURL), components.scheme?.lowercased() == "http" else { return false }
        var host = (components.host ?? "").lowercased()
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" { return false }
        return !CIDRRange.any(of: loopbackRanges, contains: host)
    }
}

extension Unicode.Scalar {
    var isHexDigit: Bool {
        ("0"..."9").contains(self) || ("a"..."f").contains(self) || ("A"..."F").contains(self)
    }
}
