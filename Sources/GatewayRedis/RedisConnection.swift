import CHiredis
import GatewayEventLoop

/// One hiredis asynchronous context, driven by `loop` through hiredis's event hooks
/// (`ev.addRead/delRead/addWrite/delWrite/cleanup`): hiredis says which readiness it wants, the
/// loop's epoll reports it, and `redisAsyncHandleRead/Write` let hiredis read, write and parse.
/// Loop thread only. The owner (`RedisSession`) learns everything through the three callbacks.
///
/// Lifetime: the context holds an unretained pointer to this object (`data`, `ev.data`), so the
/// object retains itself from creation until hiredis's `cleanup` hook, which hiredis calls exactly
/// once when it frees the context (on an I/O error, EOF, or `close()`), after every pending reply
/// callback has run with no reply. The self-reference is released on the next turn of the loop,
/// because hiredis still reads `data` after `cleanup` returns (its disconnect callback).
final class RedisConnection: IOEventHandler {
    let loop: EventLoop
    private var context: UnsafeMutablePointer<redisAsyncContext>?
    private var descriptor: Int32 = -1
    private var interest: IOEvents = []
    private var isRegistered = false
    private var cleanedUp = false
    private(set) var isClosing = false
    private var selfReference: Unmanaged<RedisConnection>?

    /// The TCP connection is established (nil) or could not be (the reason).
    var onConnected: ((RedisError?) -> Void)?
    /// The reply to the command sent with `id`, or `.connectionLost` when the connection ended first.
    /// A subscription's id receives every message of its channel.
    var onReply: ((_ id: UInt64, _ reply: Result<RedisReply, RedisError>) -> Void)?
    /// Called once, on a later turn of the loop, when the context is gone; the reason for the end.
    var onEnded: ((String) -> Void)?

    private init(context: UnsafeMutablePointer<redisAsyncContext>, loop: EventLoop) {
        self.context = context
        self.loop = loop
    }

    /// Starts a non-blocking connect to `host:port`.
    static func open(host: String, port: Int, loop: EventLoop) throws(RedisError) -> RedisConnection {
        loop.assertInEventLoop()
        guard let context = redisAsyncConnect(host, Int32(clamping: port)) else {
            throw .connectionFailed(reason: "hiredis could not allocate a context")
        }
        let connection = RedisConnection(context: context, loop: loop)
        // Hooks first: from here on every way the context ends goes through `cleanup`.
        connection.installHooks(context)
        if context.pointee.err != 0 {
            let reason = Self.errorText(context)
            redisAsyncFree(context)
            throw .connectionFailed(reason: reason)
        }
        // Adds write interest: the first writable event is how hiredis learns the connect finished.
        _ = redisAsyncSetConnectCallback(context) { context, status in
            guard let connection = RedisConnection.owner(of: context?.pointee.data) else { return }
            let failure: RedisError? = status == REDIS_OK ? nil : .connectionFailed(reason: context.map(RedisConnection.errorText) ?? "connect failed")
            connection.onConnected?(failure)
        }
        return connection
    }

    private func installHooks(_ context: UnsafeMutablePointer<redisAsyncContext>) {
        let reference = Unmanaged.passRetained(self)
        selfReference = reference
        descriptor = context.pointee.c.fd
        context.pointee.data = reference.toOpaque()
        context.pointee.ev.data = reference.toOpaque()
        context.pointee.ev.addRead = { RedisConnection.owner(of: $0)?.want(.readable, true) }
        context.pointee.ev.delRead = { RedisConnection.owner(of: $0)?.want(.readable, false) }
        context.pointee.ev.addWrite = { RedisConnection.owner(of: $0)?.want(.writable, true) }
        context.pointee.ev.delWrite = { RedisConnection.owner(of: $0)?.want(.writable, false) }
        context.pointee.ev.cleanup = { RedisConnection.owner(of: $0)?.cleanup() }
    }

    static func owner(of pointer: UnsafeMutableRawPointer?) -> RedisConnection? {
        pointer.map { Unmanaged<RedisConnection>.fromOpaque($0).takeUnretainedValue() }
    }

    static func errorText(_ context: UnsafePointer<redisAsyncContext>) -> String {
        guard context.pointee.err != 0, let text = context.pointee.errstr else { return "connection closed" }
        return String(cString: text)
    }

    static func errorText(_ context: UnsafeMutablePointer<redisAsyncContext>) -> String {
        errorText(UnsafePointer(context))
    }

    // MARK: - Commands

    /// Queues `arguments` (binary safe) for sending; the reply comes to `onReply` with `id`. False
    /// when the connection is ending or hiredis refused the command.
    func send(_ arguments: [[UInt8]], id: UInt64) -> Bool {
        guard let context, !isClosing, !arguments.isEmpty, let argumentCount = Int32(exactly: arguments.count) else { return false }
        var lengths = arguments.map(\.count)
        var joined: [UInt8] = []
        joined.reserveCapacity(lengths.reduce(1, &+))
        for argument in arguments { joined.append(contentsOf: argument) }
        // Never empty, so the buffer has an address even when every argument is "".
        joined.append(0)
        let status = joined.withUnsafeBufferPointer { buffer -> Int32 in
            guard let base = buffer.baseAddress else { return REDIS_ERR }
            var pointers: [UnsafePointer<CChar>?] = []
            pointers.reserveCapacity(arguments.count)
            var offset = 0
            for length in lengths {
                pointers.append(UnsafeRawPointer(base + offset).assumingMemoryBound(to: CChar.self))
                offset += length
            }
            // hiredis copies the arguments into its output buffer before returning.
            return redisAsyncCommandArgv(
                context, redisReplyCallback, UnsafeMutableRawPointer(bitPattern: UInt(id)), argumentCount, &pointers, &lengths)
        }
        return status == REDIS_OK
    }

    fileprivate func replyArrived(_ id: UInt64, _ result: Result<RedisReply, RedisError>) {
        onReply?(id, result)
    }

    /// Ends the connection at once: hiredis fails every pending reply (`.connectionLost`), then
    /// calls `cleanup`. Deferred to the next turn of the loop, because this may be called from inside
    /// a hiredis callback, where freeing the context would pull it from under hiredis.
    func close() {
        guard !isClosing else { return }
        isClosing = true
        let bound = LoopBound(self, loop: loop)
        loop.execute {
            let connection = bound.value
            if let context = connection.context { redisAsyncFree(context) }
        }
    }

    // MARK: - Event hooks and readiness

    private func want(_ events: IOEvents, _ wanted: Bool) {
        let updated = wanted ? interest.union(events) : interest.subtracting(events)
        guard updated != interest || !isRegistered, descriptor >= 0, !cleanedUp else { return }
        interest = updated
        do {
            if isRegistered {
                try loop.modify(descriptor, interest: updated)
            } else {
                try loop.register(descriptor, interest: updated, handler: self)
                isRegistered = true
            }
        } catch {
            // Nothing would ever wake this connection again: end it rather than leave it hanging.
            close()
        }
    }

    func handle(_ events: IOEvents) {
        guard let context else { return }
        if chiredis_is_connected(context) == 0 {
            // The connect's outcome (success, or the error that came as EPOLLERR/EPOLLHUP) is read
            // by hiredis through SO_ERROR when it is told the socket is writable.
            redisAsyncHandleWrite(context)
            return
        }
        if interest.contains(.writable), !events.isDisjoint(with: [.writable, .error, .hangup]) {
            redisAsyncHandleWrite(context)
        }
        // Writing may have ended the connection, which frees the context.
        guard let context = self.context else { return }
        if !events.isDisjoint(with: [.readable, .error, .hangup, .readHangup]) {
            redisAsyncHandleRead(context)
        }
    }

    private func cleanup() {
        guard !cleanedUp else { return }
        cleanedUp = true
        let reason = context.map(Self.errorText) ?? "connection closed"
        if isRegistered {
            loop.unregister(descriptor)
            isRegistered = false
        }
        context = nil
        let bound = LoopBound(self, loop: loop)
        loop.execute {
            let connection = bound.value
            let ended = connection.onEnded
            connection.onConnected = nil
            connection.onReply = nil
            connection.onEnded = nil
            ended?(reason)
            connection.selfReference?.release()
            connection.selfReference = nil
        }
    }
}

/// hiredis's reply callback for every command: `privateData` carries the command's id (never a
/// pointer), so a reply for a command that has since timed out or been cancelled finds nothing.
private func redisReplyCallback(_ context: UnsafeMutablePointer<redisAsyncContext>?, _ reply: UnsafeMutableRawPointer?, _ privateData: UnsafeMutableRawPointer?) {
    guard let context, let connection = RedisConnection.owner(of: context.pointee.data) else { return }
    let id = UInt64(UInt(bitPattern: privateData))
    if let reply {
        connection.replyArrived(id, .success(RedisReply(copying: reply.assumingMemoryBound(to: redisReply.self))))
    } else {
        connection.replyArrived(id, .failure(.connectionLost(reason: RedisConnection.errorText(context))))
    }
}
