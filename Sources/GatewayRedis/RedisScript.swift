import Synchronization

/// A Lua routine run in Redis: as a Redis Function where the server has them (`FCALL`, one round
/// trip), else as a script (`EVALSHA`, then `EVAL`). Reloads itself whenever Redis lost it (a
/// restart without persistence, a promoted replica, `FUNCTION FLUSH`, `SCRIPT FLUSH`).
///
/// `body` is Lua that reads its keys from `keys` and its arguments from `args` (both 1-based
/// tables) and `return`s the reply. It is wrapped as `redis.register_function(function, function(keys, args) ... end)`
/// in library `library` for `FUNCTION LOAD`, and as `local keys, args = KEYS, ARGV ...` for
/// `EVAL`, so both paths run the same code. Put a version in the library name when the body
/// changes: `FUNCTION LOAD REPLACE` only runs when the function is missing, so two gateway
/// versions sharing one Redis would otherwise run whichever body was loaded last.
public final class RedisScript: Sendable {
    public let library: String
    public let function: String
    public let body: String

    private struct State {
        /// Set when `FUNCTION LOAD` failed (Redis before 7, an ACL without `FUNCTION`): from then
        /// on this routine runs as a script.
        var functionsUnavailable = false
        /// The script's SHA-1, as `SCRIPT LOAD` returned it.
        var scriptSHA1: String?
    }
    private let state = Mutex(State())

    public init(library: String, function: String, body: String) {
        self.library = library
        self.function = function
        self.body = body
    }

    /// The `FUNCTION LOAD` source.
    public var librarySource: String {
        "#!lua name=\(library)\nredis.register_function('\(function)', function(keys, args)\n\(body)\nend)\n"
    }

    /// The `EVAL` source.
    public var scriptSource: String {
        "local keys, args = KEYS, ARGV\n\(body)\n"
    }

    /// True until `FUNCTION LOAD` has failed once; then the routine runs as a script.
    public var usesFunctions: Bool { !state.withLock { $0.functionsUnavailable } }

    /// Runs the routine with `keys` and `arguments`. Normally one round trip (`FCALL`, or
    /// `EVALSHA` on a server without functions); after Redis lost the routine, the calls that
    /// reload it. Each command has `timeout` (the client's default when nil) and `waitPastDeadline`
    /// (see `RedisClient.send`).
    public func run(
        on client: RedisClient, keys: [[UInt8]], arguments: [[UInt8]], timeout: Duration? = nil, waitPastDeadline: Bool = false
    ) async throws(RedisError) -> RedisReply {
        let keyCount = Array(String(keys.count).utf8)
        if usesFunctions {
            let call = [Array("FCALL".utf8), Array(function.utf8), keyCount] + keys + arguments
            let reply = try await client.send(call, timeout: timeout, waitPastDeadline: waitPastDeadline)
            guard Self.isMissingFunction(reply) else { return reply }
            let load = try await client.send(["FUNCTION", "LOAD", "REPLACE", librarySource], timeout: timeout, waitPastDeadline: waitPastDeadline)
            if load.errorMessage == nil {
                let retried = try await client.send(call, timeout: timeout, waitPastDeadline: waitPastDeadline)
                // Flushed again between the load and the call: run it as a script this once.
                guard Self.isMissingFunction(retried) else { return retried }
            } else {
                state.withLock { $0.functionsUnavailable = true }
            }
        }

        if let sha1 = state.withLock({ $0.scriptSHA1 }) {
            let reply = try await client.send([Array("EVALSHA".utf8), Array(sha1.utf8), keyCount] + keys + arguments, timeout: timeout, waitPastDeadline: waitPastDeadline)
            guard Self.isMissingScript(reply) else { return reply }
        }
        // SCRIPT LOAD returns the SHA-1 for the next calls' EVALSHA (no hashing here).
        let loaded = try await client.send(["SCRIPT", "LOAD", scriptSource], timeout: timeout, waitPastDeadline: waitPastDeadline)
        if case .bulk = loaded, let sha1 = loaded.text {
            state.withLock { $0.scriptSHA1 = sha1 }
            let reply = try await client.send([Array("EVALSHA".utf8), Array(sha1.utf8), keyCount] + keys + arguments, timeout: timeout, waitPastDeadline: waitPastDeadline)
            guard Self.isMissingScript(reply) else { return reply }
        }
        return try await client.send([Array("EVAL".utf8), Array(scriptSource.utf8), keyCount] + keys + arguments, timeout: timeout, waitPastDeadline: waitPastDeadline)
    }

    /// Redis 7 answers `ERR Function not found`; a server without functions, `ERR unknown command`.
    static func isMissingFunction(_ reply: RedisReply) -> Bool {
        guard let message = reply.errorMessage?.lowercased() else { return false }
        return message.contains("function not found") || message.hasPrefix("err unknown command")
    }

    static func isMissingScript(_ reply: RedisReply) -> Bool {
        reply.errorMessage?.hasPrefix("NOSCRIPT") ?? false
    }
}
