public import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A `redis-server` of a test's own: a free loopback port, no persistence (`--save ""
/// --appendonly no`), its own temporary directory, `DEBUG` allowed from loopback (for
/// `DEBUG SLEEP`). Stop, kill and restart it (on the same port) to test failures.
///
/// Suites that need one use `.enabled(if: RedisServer.shouldRun, RedisServer.skipMessage)`: without
/// `redis-server` they are skipped with that message, except when `CI` is set, where they run and
/// fail, so CI can never pass without them.
public final class RedisServer: Sendable {
    public enum FixtureError: Error, CustomStringConvertible {
        case executableMissing
        case exitedEarly(log: String)
        case notListening(port: Int)

        public var description: String {
            switch self {
            case .executableMissing: "redis-server not found in PATH or /usr/bin (apt-get install redis-server)"
            case .exitedEarly(let log): "redis-server exited at start; its log ends with:\n\(log)"
            case .notListening(let port): "redis-server did not accept connections on port \(port)"
            }
        }
    }

    public static let executablePath: String? = {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init) + ["/usr/bin", "/usr/sbin"]
        return directories.map { $0 + "/redis-server" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    public static var shouldRun: Bool {
        executablePath != nil || ProcessInfo.processInfo.environment["CI"] != nil
    }

    public static let skipMessage =
        "redis-server is not installed (apt-get install redis-server): Redis tests skipped. With CI set they run and fail instead."

    public let port: Int
    public let password: String?
    public let directory: URL
    private let extraArguments: [String]
    private let process = Mutex<ChildProcess?>(nil)

    /// Starts a server and returns once it accepts connections. `extraArguments` are added to the
    /// command line (`["--maxmemory", "10mb"]`).
    public static func start(password: String? = nil, extraArguments: [String] = []) async throws -> RedisServer {
        var lastError: any Error = FixtureError.executableMissing
        // Another process may take the free port between the check and redis-server's bind.
        for _ in 0..<3 {
            let server = try RedisServer(port: unusedLoopbackPort(), password: password, extraArguments: extraArguments)
            do {
                try await server.start()
                return server
            } catch FixtureError.exitedEarly(let log) {
                lastError = FixtureError.exitedEarly(log: log)
            }
        }
        throw lastError
    }

    private init(port: Int, password: String?, extraArguments: [String]) throws {
        self.port = port
        self.password = password
        self.extraArguments = extraArguments
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    }

    /// A server still running goes with its `ChildProcess`, which kills and reaps it.
    deinit {
        try? FileManager.default.removeItem(at: directory)
    }

    /// `redis://[:password@]127.0.0.1:port/database`.
    public func url(database: Int = 0) -> String {
        "redis://" + (password.map { ":\($0)@" } ?? "") + "127.0.0.1:\(port)/\(database)"
    }

    /// Starts (again, on the same port, with no data) a server that is not running.
    public func start() async throws {
        guard let executable = Self.executablePath else { throw FixtureError.executableMissing }
        let logFile = directory.appendingPathComponent("redis.log").path
        let process = try ChildProcess(executable, [
            "--port", "\(port)", "--bind", "127.0.0.1", "--protected-mode", "no", "--daemonize", "no",
            "--save", "", "--appendonly", "no", "--dir", directory.path, "--logfile", logFile,
            "--enable-debug-command", "local",
        ] + (password.map { ["--requirepass", $0] } ?? []) + extraArguments)
        self.process.withLock { $0 = process }
        let port = port
        try await onOwnThread { () throws -> Void in
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                guard process.isRunning else {
                    let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
                    throw FixtureError.exitedEarly(log: String(log.suffix(2000)))
                }
                // Its own log line, not merely a connection: when two tests draw the same free
                // port, the other test's server accepts while this one fails to bind and exits.
                let log = (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? ""
                if log.contains("Ready to accept connections"), (try? RawClient(port: port)) != nil { return }
                usleep(10_000)
            }
            throw FixtureError.notListening(port: port)
        }
    }

    /// Kills the server at once (SIGKILL: no goodbye to clients) and waits until it is gone.
    /// The server keeps no data worth a clean shutdown.
    public func kill() async {
        guard let process = process.withLock({ process in defer { process = nil }; return process }) else { return }
        process.send(SIGKILL)
        await onOwnThread { process.waitUntilExit() }
    }

    /// Kills the server and starts a new one on the same port, without the old one's data.
    public func restart() async throws {
        await kill()
        try await start()
    }
}
