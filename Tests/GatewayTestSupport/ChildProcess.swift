public import Glibc
import Synchronization

/// Why a child process could not be started.
public enum ChildProcessError: Error, Equatable {
    case spawnFailed(executable: String, errno: Int32)
    case pipeFailed(errno: Int32)
}

/// A child process the tests start: a server under test, redis-server, nginx, a script.
///
/// Started with `posix_spawn`, not Foundation's `Process`: `Process.run()` (Swift 6.3 on Linux)
/// crashed in a bad copy inside itself while this test process held a thousand descriptors, even
/// with launches serialised. Here the child gets only what it is given: standard input from
/// `/dev/null`, standard output and error as asked, every other descriptor closed, an empty signal
/// mask and default signal dispositions (the test process blocks some signals on its threads, and
/// a child inherits that mask).
///
/// Blocking calls (`waitUntilExit`, the reads) belong on a thread of their own (`onOwnThread`).
public final class ChildProcess: Sendable {
    public enum Output: Sendable {
        /// To `/dev/null`.
        case discard
        /// To a pipe this object reads (`readStandardOutput`, `readStandardError…ToEnd`).
        case capture
        /// Standard error only: into standard output's destination.
        case sameAsStandardOutput
    }

    public let processIdentifier: pid_t
    private let standardOutputReader: Int32?
    private let standardErrorReader: Int32?
    /// The wait status once the child has been reaped: reaping happens once, under this lock.
    private let waitStatus = Mutex<Int32?>(nil)

    /// Starts `executable` (a path) with `arguments` (not including the program name) and
    /// `environment` (nil: this process's).
    public init(
        _ executable: String, _ arguments: [String], environment: [String: String]? = nil,
        standardOutput: Output = .discard, standardError: Output = .discard
    ) throws(ChildProcessError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }

        var openedPipes: [Int32] = []
        func pipeForChild(_ target: Int32) throws(ChildProcessError) -> Int32 {
            var ends: [Int32] = [-1, -1]
            guard pipe(&ends) == 0 else { throw .pipeFailed(errno: errno) }
            openedPipes += ends
            // (`pipe2` is not in Swift's Glibc module; another child spawned in between closes
            // these anyway, with every descriptor past standard error.)
            for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&actions, ends[1], target)
            return ends[0]
        }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        var outputReader: Int32?
        var errorReader: Int32?
        do {
            switch standardOutput {
            case .capture: outputReader = try pipeForChild(1)
            case .discard, .sameAsStandardOutput: posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            }
            switch standardError {
            case .capture: errorReader = try pipeForChild(2)
            case .discard: posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            case .sameAsStandardOutput: posix_spawn_file_actions_adddup2(&actions, 1, 2)
            }
        } catch {
            for descriptor in openedPipes { close(descriptor) }
            throw error
        }
        Self.closeFrom(3, in: &actions)

        var everySignal = sigset_t()
        sigfillset(&everySignal)
        sigdelset(&everySignal, SIGKILL)
        sigdelset(&everySignal, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &everySignal)
        var noSignal = sigset_t()
        sigemptyset(&noSignal)
        posix_spawnattr_setsigmask(&attributes, &noSignal)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argumentStrings = [executable] + arguments
        let environmentStrings = environment.map { $0.map { "\($0.key)=\($0.value)" } }
        var pid: pid_t = 0
        let result = Self.withCStrings(argumentStrings) { argv in
            if let environmentStrings {
                return Self.withCStrings(environmentStrings) { envp in posix_spawn(&pid, executable, &actions, &attributes, argv, envp) }
            }
            return posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        }
        // The child has its copies of the write ends; the parent keeps only the read ends.
        for descriptor in openedPipes where descriptor != outputReader && descriptor != errorReader { close(descriptor) }
        guard result == 0 else {
            if let outputReader { close(outputReader) }
            if let errorReader { close(errorReader) }
            throw .spawnFailed(executable: executable, errno: result)
        }
        processIdentifier = pid
        standardOutputReader = outputReader
        standardErrorReader = errorReader
    }

    deinit {
        if let standardOutputReader { close(standardOutputReader) }
        if let standardErrorReader { close(standardErrorReader) }
        // A child nobody waited for would stay a zombie for the rest of the run.
        if waitStatus.withLock({ $0 }) == nil {
            Glibc.kill(processIdentifier, SIGKILL)
            waitUntilExit()
        }
    }

    /// Whether the child has not ended yet (reaps it if it has).
    public var isRunning: Bool { reapIfEnded() == nil }

    /// Blocks until the child has ended.
    public func waitUntilExit() {
        var information = siginfo_t()
        // Waits without reaping, so that reaping stays in one place under the lock.
        while waitid(P_PID, id_t(processIdentifier), &information, WEXITED | WNOWAIT) != 0 {
            guard errno == EINTR else { break }
        }
        _ = reapIfEnded()
    }

    /// The exit code when the child exited, the signal's number when a signal ended it; call after
    /// `waitUntilExit`.
    public var terminationStatus: Int32 {
        guard let status = waitStatus.withLock({ $0 }) else { return -1 }
        return Self.exited(status) ? (status >> 8) & 0xFF : status & 0x7F
    }

    /// Whether the child ended by exiting (not by a signal); call after `waitUntilExit`.
    public var exitedNormally: Bool {
        waitStatus.withLock { $0 }.map(Self.exited) ?? false
    }

    public func send(_ signal: Int32) {
        if isRunning { Glibc.kill(processIdentifier, signal) }
    }

    /// What a captured standard output has to give now, waiting for at least one byte; empty once
    /// the child has closed it.
    public func readStandardOutput() -> [UInt8] {
        guard let standardOutputReader else { return [] }
        return Self.readSome(standardOutputReader)
    }

    public func readStandardOutputToEnd() -> [UInt8] {
        guard let standardOutputReader else { return [] }
        return Self.readToEnd(standardOutputReader)
    }

    public func readStandardErrorToEnd() -> [UInt8] {
        guard let standardErrorReader else { return [] }
        return Self.readToEnd(standardErrorReader)
    }

    // MARK: Private

    private func reapIfEnded() -> Int32? {
        waitStatus.withLock { recorded in
            if let recorded { return recorded }
            var status: Int32 = 0
            var reaped: pid_t
            repeat { reaped = waitpid(processIdentifier, &status, WNOHANG) } while reaped < 0 && errno == EINTR
            guard reaped == processIdentifier else { return nil }
            recorded = status
            return status
        }
    }

    private static func exited(_ status: Int32) -> Bool { status & 0x7F == 0 }

    private static func readSome(_ descriptor: Int32) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count >= 0 { return Array(buffer.prefix(count)) }
            if errno != EINTR { return [] }
        }
    }

    private static func readToEnd(_ descriptor: Int32) -> [UInt8] {
        var everything: [UInt8] = []
        while true {
            let chunk = readSome(descriptor)
            if chunk.isEmpty { return everything }
            everything += chunk
        }
    }

    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34) is not in Swift's Glibc module;
    /// found at run time. Without it the child inherits this process's descriptors that lack
    /// close-on-exec, which the test's own sockets have.
    private static func closeFrom(_ lowest: Int32, in actions: inout posix_spawn_file_actions_t) {
        typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
        _ = unsafeBitCast(symbol, to: AddCloseFrom.self)(&actions, lowest)
    }

    private static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
        defer { for pointer in pointers { free(pointer) } }
        return body(pointers)
    }
}
