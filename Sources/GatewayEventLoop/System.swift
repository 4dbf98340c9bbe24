import CGatewaySystem
#if canImport(Glibc)
import Glibc
#endif

/// A failed system call: which call and the errno it left.
public struct SystemError: Error, Sendable, Equatable, CustomStringConvertible {
    public let function: String
    public let errno: Int32

    public init(function: String, errno: Int32) {
        self.function = function
        self.errno = errno
    }

    public var description: String {
        "\(function) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// The result of a non-blocking call: either it did something, or it would have blocked.
public enum IOResult<Value: Sendable>: Sendable {
    case processed(Value)
    case wouldBlock
}

/// An open file descriptor that closes exactly once: when dropped, or through `close()`.
///
/// Non-copyable, so ownership is explicit and a second close cannot be written by accident; a
/// descriptor closed behind its back (EBADF) stops the process in `SystemCall`.
public struct FileDescriptor: ~Copyable, Sendable {
    /// The descriptor's number, valid while this value lives. Never close it by hand.
    public let rawValue: Int32

    init(taking rawValue: Int32) {
        self.rawValue = rawValue
    }

    deinit {
        SystemCall.close(rawValue)
    }

    public consuming func close() {
        let rawValue = rawValue
        discard self
        SystemCall.close(rawValue)
    }
}

/// Descriptors 0, 1 and 2, which a process may be started without (`cmd >&-`, some supervisors).
public enum StandardDescriptors {
    /// Opens /dev/null on each of them that is not open. Called first thing by the command-line
    /// tools, before anything opens a descriptor: otherwise the first epoll instance or socket
    /// would take number 1 and log lines would be written into it, and with 1 simply closed every
    /// log write would fail with EBADF, which `SystemCall` treats as a bug and stops on.
    public static func openMissing() {
        SystemCall.openNullOnMissingStandardDescriptors()
    }
}

/// The one place that calls into the kernel and reads `errno`.
///
/// Every wrapper retries `EINTR`, turns `EAGAIN`/`EWOULDBLOCK` into `.wouldBlock` where the call is
/// non-blocking, and throws a typed `SystemError` for everything else, so no caller ever reads
/// `errno` itself (it could be clobbered by any intervening call). `EBADF` and `EFAULT` stop the
/// process, as in SwiftNIO: they mean the program used a descriptor or buffer it does not own,
/// which no input can cause and no retry can fix.
enum SystemCall {
    /// Reads `errno` after a failed call, stopping on errors that only a bug can cause.
    @inline(__always)
    private static func lastError(_ function: StaticString) -> Int32 {
        let error = Glibc.errno
        if error == EBADF || error == EFAULT {
            preconditionFailure("\(function) failed with \(String(cString: strerror(error))): a descriptor or buffer the program does not own")
        }
        return error
    }

    @inline(__always)
    private static func retryingInterrupts<T: FixedWidthInteger>(
        _ function: StaticString,
        _ body: () -> T
    ) throws(SystemError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let error = lastError(function)
            if error == EINTR { continue }
            throw SystemError(function: "\(function)", errno: error)
        }
    }

    @inline(__always)
    private static func nonBlocking<T: FixedWidthInteger>(
        _ function: StaticString,
        _ body: () -> T
    ) throws(SystemError) -> IOResult<T> {
        do {
            return .processed(try retryingInterrupts(function, body))
        } catch {
            if error.errno == EAGAIN || error.errno == EWOULDBLOCK { return .wouldBlock }
            throw error
        }
    }

    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("send") { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL)) }
    }

    /// write(2), for descriptors that are not sockets (pipes, terminals, files, counters).
    static func writeDescriptor(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("write") { Glibc.write(fd, buffer.baseAddress, buffer.count) }
    }

    static func writev(_ fd: Int32, _ vectors: UnsafeBufferPointer<iovec>) throws(SystemError) -> IOResult<Int> {
        var header = msghdr()
        header.msg_iov = UnsafeMutablePointer(mutating: vectors.baseAddress)
        header.msg_iovlen = vectors.count
        // sendmsg instead of writev so MSG_NOSIGNAL spares us SIGPIPE on a closed peer.
        return try nonBlocking("sendmsg") { Glibc.sendmsg(fd, &header, Int32(MSG_NOSIGNAL)) }
    }

    /// The accepted connection, or nil when none is pending.
    static func accept(_ fd: Int32) throws(SystemError) -> (descriptor: Int32, address: sockaddr_storage)? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = try withUnsafeMutablePointer(to: &address) { pointer throws(SystemError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress throws(SystemError) in
                try nonBlocking("accept4") { cgs_accept4(fd, socketAddress, &length, cgs_sock_flags()) }
            }
        }
        switch result {
        case .processed(let client): return (client, address)
        case .wouldBlock: return nil
        }
    }

    static func socket(family: Int32) throws(SystemError) -> FileDescriptor {
        FileDescriptor(taking: try retryingInterrupts("socket") {
            Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | cgs_sock_flags(), 0)
        })
    }

    static func bind(_ fd: Int32, _ address: UnsafePointer<sockaddr>, length: socklen_t) throws(SystemError) {
        _ = try retryingInterrupts("bind") { Glibc.bind(fd, address, length) }
    }

    static func listen(_ fd: Int32, backlog: Int32) throws(SystemError) {
        _ = try retryingInterrupts("listen") { Glibc.listen(fd, backlog) }
    }

    static func localAddress(_ fd: Int32) throws(SystemError) -> sockaddr_storage {
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = try withUnsafeMutablePointer(to: &storage) { pointer throws(SystemError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address throws(SystemError) in
                try retryingInterrupts("getsockname") { getsockname(fd, address, &length) }
            }
        }
        return storage
    }

    /// Only `FileDescriptor` closes. Not retried on EINTR: on Linux the descriptor is released either
    /// way, and a retry could close a number another thread has just been given.
    /// Opens /dev/null on each of descriptors 0, 1 and 2 the process was started without. EBADF is
    /// the expected answer for a missing one here, which is why this reads `errno` itself.
    static func openNullOnMissingStandardDescriptors() {
        for fd: Int32 in 0...2 where Glibc.fcntl(fd, F_GETFD) < 0 && Glibc.errno == EBADF {
            // open(2) takes the lowest free number: this one, since every number below it is open.
            let opened = Glibc.open("/dev/null", O_RDWR)
            if opened >= 0 && opened != fd { _ = Glibc.close(opened) }
        }
    }

    fileprivate static func close(_ fd: Int32) {
        if Glibc.close(fd) < 0 { _ = lastError("close") }
    }

    /// Fails only for a peer that is already gone (ENOTCONN), which the next read reports anyway.
    static func shutdownWrite(_ fd: Int32) {
        _ = try? retryingInterrupts("shutdown") { Glibc.shutdown(fd, Int32(SHUT_WR)) }
    }

    static func epollCreate() throws(SystemError) -> FileDescriptor {
        FileDescriptor(taking: try retryingInterrupts("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) })
    }

    static func epollControl(_ epoll: Int32, _ operation: Int32, _ fd: Int32, events: UInt32, data: UInt64) throws(SystemError) {
        var event = cgs_make_event(events, data)
        _ = try retryingInterrupts("epoll_ctl") { epoll_ctl(epoll, operation, fd, &event) }
    }

    /// Waits for events; an interrupted wait is simply resumed (the timeout is 0 or infinite).
    static func epollWait(_ epoll: Int32, _ events: UnsafeMutableBufferPointer<epoll_event>, timeoutMilliseconds: Int32) throws(SystemError) -> Int {
        Int(try retryingInterrupts("epoll_wait") {
            epoll_wait(epoll, events.baseAddress, Int32(events.count), timeoutMilliseconds)
        })
    }

    static func eventfdCreate() throws(SystemError) -> FileDescriptor {
        FileDescriptor(taking: try retryingInterrupts("eventfd") { eventfd(0, cgs_efd_flags()) })
    }

    static func timerfdCreate() throws(SystemError) -> FileDescriptor {
        FileDescriptor(taking: try retryingInterrupts("timerfd_create") { timerfd_create(CLOCK_MONOTONIC, cgs_tfd_flags()) })
    }

    /// Arms `fd` to fire once at the absolute monotonic time `deadline` (nanoseconds); zero disarms.
    static func timerfdArm(_ fd: Int32, deadline: UInt64) throws(SystemError) {
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(deadline / 1_000_000_000)
        spec.it_value.tv_nsec = Int(deadline % 1_000_000_000)
        _ = try retryingInterrupts("timerfd_settime") { timerfd_settime(fd, Int32(TFD_TIMER_ABSTIME), &spec, nil) }
    }

    /// Reads (and so clears) an eventfd or timerfd counter; a spurious wake-up (EAGAIN) is not an error.
    static func drainCounter(_ fd: Int32) {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { buffer in try? nonBlocking("read") { Glibc.read(fd, buffer.baseAddress, 8) } }
    }

    /// EAGAIN means the counter is already non-zero: the loop is being woken anyway.
    static func signalEventfd(_ fd: Int32) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { buffer in try? writeDescriptor(fd, buffer) }
    }

    /// Fills `buffer` from the kernel CSPRNG. getrandom(2) blocks only until the pool is first
    /// initialised at boot and cannot run out; a failure means a kernel without it (before 3.17),
    /// where going on with predictable request ids or secrets would be worse than stopping.
    static func fillRandom(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        var filled = 0
        // Requests above 256 bytes may return short when a signal arrives; the rest is asked again.
        while filled < buffer.count {
            do {
                filled += try retryingInterrupts("getrandom") { cgs_getrandom(base + filled, buffer.count - filled) }
            } catch {
                fatalError("no source of secure random bytes: \(error)")
            }
        }
    }

    static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(SystemError) {
        var value = value
        _ = try retryingInterrupts("setsockopt") {
            setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Blocks the calling thread for `nanoseconds`, the whole time even across signals.
    static func sleep(nanoseconds: UInt64) {
        var remaining = timespec(tv_sec: Int(clamping: nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
        while true {
            let request = remaining
            guard withUnsafePointer(to: request, { nanosleep($0, &remaining) }) == -1, lastError("nanosleep") == EINTR else { return }
        }
    }

    /// Makes `close` send RST instead of FIN: for fault injection and for refusing abusive peers.
    static func setLingerZero(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = try? retryingInterrupts("setsockopt") {
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
        }
    }
}

/// Blocks the calling thread (never an event loop's) for `nanoseconds`.
public func sleepThread(nanoseconds: UInt64) { SystemCall.sleep(nanoseconds: nanoseconds) }

/// Monotonic nanoseconds (CLOCK_MONOTONIC), the time base of every deadline in the loop.
public func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
}
