@testable import GatewayConfig
import GatewayProviders

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Testing

/// docs/configuration.md lists exactly the keys the validator accepts, each with the default a
/// minimal file really gets.
@Suite("The configuration reference")
struct DocumentationTests {
    /// `| `key` | default | allowed | meaning |` rows: key → the default column.
    static let documented: [String: String] = {
        let text = (try? String(contentsOfFile: SourceTree.packageRoot + "/docs/configuration.md", encoding: .utf8)) ?? ""
        var rows: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 4 else { continue }
            rows[String(cells[1].dropFirst().dropLast())] = cells[2]
        }
        return rows
    }()

    /// Every key a file may contain, as the reference names it.
    static var accepted: Set<String> {
        var keys: Set<String> = []
        for key in ServerSettings.configKeys { keys.insert("server.\(key)") }
        for key in AuthSettings.configKeys { keys.insert("auth.\(key)") }
        for key in CacheSettings.configKeys { keys.insert("cache.\(key)") }
        for key in RateLimitSettings.configKeys where key != "default" && key != "unauthenticated" {
            keys.insert("rateLimit.\(key)")
        }
        for key in RateLimitSettings.policyConfigKeys { keys.insert("rateLimit.default.\(key)") }
        for key in RateLimitSettings.requestPolicyConfigKeys { keys.insert("rateLimit.unauthenticated.\(key)") }
        for key in ClientSettings.configKeys { keys.insert("clients[].\(key)") }
        for key in ProviderSettings.commonConfigKeys { keys.insert("providers[].\(key)") }
        for type in ProviderType.allCases {
            for key in ProviderSettings.configKeys(specificTo: type) { keys.insert("providers[].\(key)") }
        }
        for key in RedisSettings.configKeys { keys.insert("redis.\(key)") }
        return keys
    }

    @Test("Every accepted key is documented, and nothing else is")
    func everyKeyIsDocumented() {
        #expect(Keys.topLevelSectionsAreDocumented)
        let documented = Set(Self.documented.keys)
        #expect(Self.accepted.subtracting(documented).sorted() == [], "accepted but not documented")
        #expect(documented.subtracting(Self.accepted).sorted() == [], "documented but not accepted")
    }

    @Test("Each documented default is the one a minimal file gets")
    func documentedDefaultsAreTheRealOnes() throws {
        let configuration = try ConfigLoader.load(yaml: """
            clients:
              - {id: web, keySHA256: "\(String(repeating: "ab", count: 32))"}
            providers:
              - {name: kaizen, type: kaizen, baseURL: "https://kaizen.example", credential: secret-1}
              - {name: kapso, type: kapso, baseURL: "https://kapso.example", credential: secret-2}
              - {name: b3os, type: b3os, baseURL: "https://b3os.example", credential: secret-3}
            redis: {url: "redis://127.0.0.1"}
            """, environment: [:])
        let effective = Self.flatten(configuration.redactedDescription())
        var compared = 0
        for (key, column) in Self.documented {
            // Only a single literal in backticks is a default to compare; prose ("required", a
            // key to inherit from, an environment fallback) is not.
            guard column.hasPrefix("`"), column.hasSuffix("`"), column.filter({ $0 == "`" }).count == 2,
                  !column.contains("rateLimit.")
            else { continue }
            let literal = String(column.dropFirst().dropLast())
            #expect(effective[key] == literal, "\(key): documented \(literal), effective \(effective[key] ?? "absent")")
            compared += 1
        }
        #expect(compared >= 30, "most keys have a literal default")
    }

    /// `check-config`'s YAML as `section.key` (and `providers[].key`, `rateLimit.default.member`) → value.
    static func flatten(_ yaml: String) -> [String: String] {
        var values: [String: String] = [:]
        var section = ""
        for line in yaml.split(separator: "\n").map(String.init) where !line.trimmingCharacters(in: .whitespaces).hasPrefix("#") {
            if !line.hasPrefix(" ") {
                section = String(line.prefix { $0 != ":" })
                continue
            }
            var body = line.trimmingCharacters(in: .whitespaces)
            if body.hasPrefix("- ") { body.removeFirst(2) }
            guard let colon = body.firstIndex(of: ":") else { continue }
            let key = String(body[..<colon])
            var value = body[body.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            let prefix = section == "providers" || section == "clients" ? "\(section)[]" : section
            if value.hasPrefix("{"), value.hasSuffix("}") {
                for member in value.dropFirst().dropLast().split(separator: ",") {
                    let parts = member.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                    if parts.count == 2 { values["\(prefix).\(key).\(parts[0])"] = parts[1] }
                }
            } else if values["\(prefix).\(key)"] == nil {
                values["\(prefix).\(key)"] = value
            }
        }
        return values
    }

    enum Keys {
        /// The reference has a heading for every top-level section.
        static var topLevelSectionsAreDocumented: Bool {
            let text = (try? String(contentsOfFile: SourceTree.packageRoot + "/docs/configuration.md", encoding: .utf8)) ?? ""
            return ConfigurationValidator.sections.allSatisfy { text.contains("## `\($0)") }
        }
    }
}
