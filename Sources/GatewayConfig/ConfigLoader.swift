import Configuration
import Yams

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads and validates a gateway configuration file (docs/configuration.md).
public enum ConfigLoader {
    /// Files larger than this are refused rather than parsed (a config is a few kilobytes).
    public static let maximumFileBytes = 4 * 1024 * 1024

    /// This process's environment (the default source of `${NAME}` values).
    public static var processEnvironment: [String: String] {
        ProcessInfo.processInfo.environment
    }

    /// Loads `path`, replacing `${NAME}` from `environment`. Every problem is reported, named by file, line
    /// and key; problems never contain a credential or cursor secret.
    public static func load(
        path: String,
        environment: [String: String] = ConfigLoader.processEnvironment
    ) throws(ConfigurationErrors) -> GatewayConfiguration {
        let bytes: [UInt8]
        do {
            bytes = try readFile(atPath: path)
        } catch {
            throw ConfigurationErrors(problems: [ConfigProblem(file: path, key: "", line: nil, message: error.message)])
        }
        return try load(bytes: bytes, fileName: path, environment: environmentProvider(environment))
    }

    /// Validates YAML text; `fileName` is what problems name as their file.
    public static func load(
        yaml: String,
        fileName: String = "<inline>",
        environment: [String: String] = ConfigLoader.processEnvironment
    ) throws(ConfigurationErrors) -> GatewayConfiguration {
        try load(text: yaml, fileName: fileName, environment: environmentProvider(environment))
    }

    // MARK: - Internals shared with the reloading snapshot

    /// Environment values are marked secret so that swift-configuration's own logging never prints them.
    static func environmentProvider(_ environment: [String: String]) -> EnvironmentVariablesProvider {
        EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: .all)
    }

    static func load(
        bytes: [UInt8],
        fileName: String,
        environment: EnvironmentVariablesProvider
    ) throws(ConfigurationErrors) -> GatewayConfiguration {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw ConfigurationErrors(problems: [
                ConfigProblem(file: fileName, key: "", line: nil, message: "is not valid UTF-8 text")
            ])
        }
        return try load(text: text, fileName: fileName, environment: environment)
    }

    static func load(
        text: String,
        fileName: String,
        environment: EnvironmentVariablesProvider
    ) throws(ConfigurationErrors) -> GatewayConfiguration {
        if let line = AnchorGuard.firstAnchorOrAliasLine(in: text) {
            throw ConfigurationErrors(problems: [
                ConfigProblem(
                    file: fileName, key: "", line: line,
                    message: "uses a YAML anchor or alias (&name or *name), which gateway configuration files do not support; write the values out"
                )
            ])
        }
        let root: Node?
        do {
            root = try Parser(yaml: text, encoding: .utf8).singleRoot()
        } catch {
            throw ConfigurationErrors(problems: [syntaxProblem(error, text: text, fileName: fileName)])
        }
        var validator = ConfigurationValidator(fileName: fileName, environment: environment)
        let configuration = validator.validate(root: root)
        if let configuration, validator.problems.isEmpty {
            return configuration
        }
        var problems = validator.problems
        if problems.isEmpty {
            problems = [ConfigProblem(file: fileName, key: "", line: nil, message: "is not a usable configuration")]
        }
        throw ConfigurationErrors(problems: inFileOrder(problems))
    }

    /// By line, problems without one last; equal lines keep the order they were found in.
    static func inFileOrder(_ problems: [ConfigProblem]) -> [ConfigProblem] {
        problems.enumerated()
            .sorted { lhs, rhs in
                let left = lhs.element.line ?? Int.max
                let right = rhs.element.line ?? Int.max
                return left != right ? left < right : lhs.offset < rhs.offset
            }
            .map(\.element)
    }

    /// Yams' own descriptions quote the offending source line, which may hold a secret; only the position and
    /// libyaml's problem text are used.
    static func syntaxProblem(_ error: any Error, text: String, fileName: String) -> ConfigProblem {
        func problem(_ line: Int?, _ message: String) -> ConfigProblem {
            ConfigProblem(file: fileName, key: "", line: line, message: message)
        }
        guard let yamlError = error as? YamlError else {
            return problem(nil, "is not valid YAML")
        }
        switch yamlError {
        case .scanner(let context, let description, let mark, _),
            .parser(let context, let description, let mark, _),
            .composer(let context, let description, let mark, _):
            var message = "YAML syntax error: \(description)"
            if let context {
                message += " (\(context.text) started at line \(context.mark.line))"
            }
            return problem(mark.line, message)
        case .reader(let description, let offset, _, _):
            let line = offset.map { characterOffset in
                1 + text.prefix(characterOffset).reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
            }
            return problem(line, "unreadable YAML text: \(description)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let keys = duplicates.map { ConfigFieldReader.quoted($0) }.joined(separator: ", ")
            return problem(context.mark.line, "duplicate key \(keys) in one mapping (its first use is on this line); each key may appear only once")
        case .dataCouldNotBeDecoded:
            return problem(nil, "is not valid UTF-8 text")
        default:
            return problem(nil, "is not valid YAML")
        }
    }

    struct FileReadError: Error {
        var message: String
    }

    static func readFile(atPath path: String) throws(FileReadError) -> [UInt8] {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw FileReadError(message: "cannot open the configuration file: \(systemError())")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw FileReadError(message: "cannot read the configuration file: \(systemError())")
        }
        if (status.st_mode & S_IFMT) == S_IFDIR {
            throw FileReadError(message: "is a directory, not a configuration file")
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw FileReadError(message: "cannot read the configuration file: \(systemError())")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
            if bytes.count > maximumFileBytes {
                throw FileReadError(message: "is larger than \(maximumFileBytes) bytes; not a configuration file")
            }
        }
        return bytes
    }

    private static func systemError() -> String {
        String(cString: strerror(errno))
    }
}
