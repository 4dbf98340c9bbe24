import ArgumentParser
import GatewayApp
import GatewayConfig
import GatewayEventLoop
import Logging
import ServiceLifecycle
#if canImport(Glibc)
import Glibc
#endif

@main
struct ExecutionsGatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "executions-gateway",
        abstract: "One REST API in front of Kaizen, Kapso and B3OS workflow executions.",
        discussion: """
        With no subcommand it runs the demo: simulated providers and the gateway on 127.0.0.1:8080,
        no API key needed. In production, run `serve --config FILE`; check a file first with
        `check-config --config FILE`. SIGTERM or SIGINT drains in-flight requests, then exits 0.
        """,
        subcommands: [Demo.self, Serve.self, CheckConfig.self],
        defaultSubcommand: Demo.self
    )

    static func main() async {
        StandardDescriptors.openMissing()
        do {
            var command = try parseAsRoot()
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

struct ConfigOption: ParsableArguments {
    @Option(name: .shortAndLong, help: ArgumentHelp("The YAML configuration file (default: $GATEWAY_CONFIG).", valueName: "file"))
    var config: String?

    /// Without a file, says so in one line and exits 64 (EX_USAGE): a `ValidationError` thrown from
    /// `run()` would be followed by the top-level usage, which mentions neither --config nor GATEWAY_CONFIG.
    func resolvedPath() throws(ExitCode) -> String {
        if let config { return config }
        if let fromEnvironment = getenv("GATEWAY_CONFIG").map({ String(cString: $0) }), !fromEnvironment.isEmpty {
            return fromEnvironment
        }
        printError("executions-gateway: no configuration file: pass --config FILE or set GATEWAY_CONFIG.")
        throw ExitCode.validationFailure
    }
}

/// Loads and validates, printing every problem (file:line: key: message) to standard error.
func loadConfiguration(_ path: String) -> GatewayConfiguration? {
    do {
        return try ConfigLoader.load(path: path)
    } catch {
        for problem in error.problems { printError(problem.description) }
        printError("\(error.problems.count) problem\(error.problems.count == 1 ? "" : "s") in \(path)")
        return nil
    }
}

func printError(_ line: String) { writeLine(line, to: 2) }

/// Unbuffered, so what the user is told appears at once even when stdout is a pipe or a file, and
/// does not interleave with the JSON log lines (which are written the same way).
func printOutput(_ line: String) { writeLine(line, to: 1) }

private func writeLine(_ line: String, to descriptor: Int32) {
    _ = Array((line + "\n").utf8).withUnsafeBytes { DescriptorIO.writeAll(descriptor, $0) }
}

func makeLoggers(level: Logger.Level) -> (Logger, Logger) {
    LoggingSystem.bootstrap { label in
        var handler = JSONLogHandler(label: label)
        handler.logLevel = level
        return handler
    }
    return (Logger(label: "executions-gateway"), Logger(label: "executions-gateway.access"))
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the gateway with a configuration file.")

    @OptionGroup var options: ConfigOption
    @Option(help: "Log level.") var logLevel: LogLevel = .info

    func run() async throws {
        ProcessMemory.limitAllocatorArenas(to: 2)
        let path = try options.resolvedPath()
        guard let configuration = loadConfiguration(path) else { throw ExitCode(1) }
        let (logger, accessLogger) = makeLoggers(level: logLevel.level)
        logger.info("configuration loaded", metadata: ["file": .string(path), "effective": .string(configuration.redactedDescription())])
        let runtime: GatewayRuntime
        do {
            runtime = try GatewayRuntime(configuration: configuration, logger: logger, accessLogger: accessLogger)
        } catch {
            printError("executions-gateway: \(error)")
            throw ExitCode(1)
        }
        // SIGHUP (or a change seen by the 15 s poll) reloads the file: clients and rate limits apply
        // at once; an invalid file is reported and the running configuration stays.
        let watcher: ReloadingGatewayConfiguration
        do {
            watcher = try await ReloadingGatewayConfiguration(path: path, logger: logger) { [runtime, logger] reload in
                switch reload {
                case .applied(let new, let previous):
                    runtime.applyReloaded(new, previous: previous)
                case .rejected(let errors):
                    logger.error("configuration file changed but is invalid; keeping the running configuration", metadata: [
                        "problems": .array(errors.problems.map { .string($0.description) }),
                    ])
                }
            }
        } catch {
            for problem in error.problems { printError(problem.description) }
            throw ExitCode(1)
        }
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [
                .init(service: watcher),
                .init(service: runtime, successTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        // Log lines are written by a thread of their own: let it finish, unless stdout has stalled.
        await JSONLogHandler.LogOutput.standardOutput.waitUntilWritten(timeout: .seconds(2))
    }
}

struct CheckConfig: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a configuration file: exit 0, or 1 with every problem listed."
    )

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let path = try options.resolvedPath()
        guard let configuration = loadConfiguration(path) else { throw ExitCode(1) }
        printOutput(configuration.redactedDescription())
        printOutput("\(path): OK (\(configuration.providers.count) providers, \(configuration.clients.count) clients)")
    }
}

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run simulated Kaizen, Kapso and B3OS providers and the gateway in front of them (the default)."
    )

    @Option(help: "Address the gateway listens on.") var host = "127.0.0.1"
    @Option(help: "Port the gateway listens on.") var port = 8080
    @Option(help: "Seed of the simulated data.") var seed: UInt64 = 1
    @Option(help: "Log level of the JSON logs (access logs are info).") var logLevel: LogLevel = .info

    func run() async throws {
        ProcessMemory.limitAllocatorArenas(to: 2)
        let (logger, accessLogger) = makeLoggers(level: logLevel.level)
        let demo: DemoEnvironment
        do {
            demo = try DemoEnvironment.start(
                host: host, port: port, seed: seed, logger: logger, accessLogger: accessLogger, listen: false
            )
        } catch {
            printError("executions-gateway demo: \(error)")
            throw ExitCode(1)
        }
        // The gateway binds its port and the instructions are printed only once the service group
        // runs, that is after it has installed its SIGTERM/SIGINT handlers: a signal sent as soon as
        // the demo answers (or prints) then drains it instead of killing it.
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: demo.upstreamServers.map { $0 as any Service } + [DemoGateway(demo: demo)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        do {
            try await group.run()
        } catch let error as GatewayStartupError {
            printError("executions-gateway demo: \(error)")
            throw ExitCode(1)
        }
    }
}

/// The demo's gateway as a service: binds, says how to use it, serves until shutdown.
private struct DemoGateway: Service {
    let demo: DemoEnvironment

    func run() async throws {
        try demo.runtime.start()
        printOutput(demo.instructions())
        try await demo.runtime.run()
    }
}

/// Log levels as command-line values.
enum LogLevel: String, ExpressibleByArgument, CaseIterable {
    case trace, debug, info, notice, warning, error, critical

    var level: Logger.Level { Logger.Level(rawValue: rawValue) ?? .info }
}
