#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Rules on values that more than one section applies (names, secrets, URLs, hosts).
enum ConfigurationRules {
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
            message += "; did you mean \(ConfigFieldReader.quoted(suggestion))?"
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

extension ConfigurationRules {
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
