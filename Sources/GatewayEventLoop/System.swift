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

/// The one place that calls into the kernel and reads `errno`.
///
/// Every wrapper retries `EINTR`, turns `EAGAIN`/`EWOULDBLOCK` into `.wouldBlock` where the call is
/// non-blocking, and throws a typed `SystemError` for everything else, so no caller ever reads
/// `errno` itself (it could be clobbered by any intervening call).
enum SystemCall {
    @inline(__always)
    private static func retryingInterrupts<T: FixedWidthInteger>(
        _ function: StaticString,
        _ body: () -> T
    ) throws(SystemError) -> T {
        while true {
            let result = body()
            if result >= 0 { return result }
            let error = Glibc.errno
            if error == EINTR { continue }
            throw SystemError(function: "\(function)", errno: error)
        }
    }

    @inline(__always)
    private static func nonBlocking<T: FixedWidthInteger>(
        _ function: StaticString,
        _ body: () -> T
    ) throws(SystemError) -> IOResult<T> {
        while true {
            let result = body()
            if result >= 0 { return .processed(result) }
            let error = Glibc.errno
            if error == EINTR { continue }
            if error == EAGAIN || error == EWOULDBLOCK { return .wouldBlock }
            throw SystemError(function: "\(function)", errno: error)
        }
    }

    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("read") { Glibc.read(fd, buffer.baseAddress, buffer.count) }
    }

    static func write(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try nonBlocking("write") { Glibc.send(fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL)) }
    }

    static func writev(_ fd: Int32, _ vectors: UnsafeBufferPointer<iovec>) throws(SystemError) -> IOResult<Int> {
        var header = msghdr()
        header.msg_iov = UnsafeMutablePointer(mutating: vectors.baseAddress)
        header.msg_iovlen = vectors.count
        // sendmsg instead of writev so MSG_NOSIGNAL spares us SIGPIPE on a closed peer.
        return try nonBlocking("sendmsg") { Glibc.sendmsg(fd, &header, Int32(MSG_NOSIGNAL)) }
    }

    static func accept(_ fd: Int32) throws(SystemError) -> IOResult<(fd: Int32, address: sockaddr_storage)> {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let result = try withUnsafeMutablePointer(to: &address) { pointer throws(SystemError) in
            try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress throws(SystemError) in
                try nonBlocking("accept4") { cgs_accept4(fd, socketAddress, &length, cgs_sock_flags()) }
            }
        }
        switch result {
        case .processed(let client): return .processed((client, address))
        case .wouldBlock: return .wouldBlock
        }
    }

    /// `close` is not retried on EINTR: on Linux the descriptor is released either way.
    static func close(_ fd: Int32) {
        _ = Glibc.close(fd)
    }

    static func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    static func epollCreate() throws(SystemError) -> Int32 {
        try retryingInterrupts("epoll_create1") { epoll_create1(Int32(EPOLL_CLOEXEC)) }
    }

    static func epollControl(_ epoll: Int32, _ operation: Int32, _ fd: Int32, events: UInt32, data: UInt64) throws(SystemError) {
        var event = cgs_make_event(events, data)
        _ = try retryingInterrupts("epoll_ctl") { epoll_ctl(epoll, operation, fd, &event) }
    }

    /// Waits for events; an interrupted wait returns zero events rather than failing.
    static func epollWait(_ epoll: Int32, _ events: UnsafeMutableBufferPointer<epoll_event>, timeoutMilliseconds: Int32) throws(SystemError) -> Int {
        let result = epoll_wait(epoll, events.baseAddress, Int32(events.count), timeoutMilliseconds)
        if result >= 0 { return Int(result) }
        let error = Glibc.errno
        if error == EINTR { return 0 }
        throw SystemError(function: "epoll_wait", errno: error)
    }

    static func eventfdCreate() throws(SystemError) -> Int32 {
        try retryingInterrupts("eventfd") { eventfd(0, cgs_efd_flags()) }
    }

    static func timerfdCreate() throws(SystemError) -> Int32 {
        try retryingInterrupts("timerfd_create") { timerfd_create(CLOCK_MONOTONIC, cgs_tfd_flags()) }
    }

    /// Arms `fd` to fire once at the absolute monotonic time `deadline` (nanoseconds); zero disarms.
    static func timerfdArm(_ fd: Int32, deadline: UInt64) throws(SystemError) {
        var spec = itimerspec()
        spec.it_value.tv_sec = Int(deadline / 1_000_000_000)
        spec.it_value.tv_nsec = Int(deadline % 1_000_000_000)
        _ = try retryingInterrupts("timerfd_settime") { timerfd_settime(fd, Int32(TFD_TIMER_ABSTIME), &spec, nil) }
    }

    /// Reads (and so clears) an eventfd or timerfd counter; a spurious wake-up is not an error.
    static func drainCounter(_ fd: Int32) {
        var value: UInt64 = 0
        _ = withUnsafeMutableBytes(of: &value) { Glibc.read(fd, $0.baseAddress, 8) }
    }

    static func signalEventfd(_ fd: Int32) {
        var one: UInt64 = 1
        _ = withUnsafeBytes(of: &one) { Glibc.write(fd, $0.baseAddress, 8) }
    }

    static func setOption(_ fd: Int32, level: Int32, name: Int32, value: Int32) throws(SystemError) {
        var value = value
        _ = try retryingInterrupts("setsockopt") {
            setsockopt(fd, level, name, &value, socklen_t(MemoryLayout<Int32>.size))
        }
    }

    /// Makes `close` send RST instead of FIN: for fault injection and for refusing abusive peers.
    static func setLingerZero(_ fd: Int32) {
        var option = linger(l_onoff: 1, l_linger: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_LINGER, &option, socklen_t(MemoryLayout<linger>.size))
    }
}

/// Monotonic nanoseconds (CLOCK_MONOTONIC), the time base of every deadline in the loop.
public func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) &* 1_000_000_000 &+ UInt64(spec.tv_nsec)
}
