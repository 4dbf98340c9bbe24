import CGatewaySystem
#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 socket address parsed from a numeric host and a port.
public struct SocketAddress: Sendable, CustomStringConvertible {
    fileprivate var storage: sockaddr_storage
    fileprivate var length: socklen_t

    /// Accepts numeric IPv4/IPv6 hosts and `localhost`; anything else is an error (no DNS at bind time).
    public init(host: String, port: Int) throws(SystemError) {
        guard (0...65535).contains(port) else { throw SystemError(function: "bind: port \(port)", errno: EINVAL) }
        storage = sockaddr_storage()
        let numericHost = host == "localhost" ? "127.0.0.1" : host.trimmingBrackets()
        var address4 = sockaddr_in()
        if inet_pton(AF_INET, numericHost, &address4.sin_addr) == 1 {
            address4.sin_family = sa_family_t(AF_INET)
            address4.sin_port = in_port_t(UInt16(port).bigEndian)
            length = socklen_t(MemoryLayout<sockaddr_in>.size)
            withUnsafeMutableBytes(of: &storage) { target in
                withUnsafeBytes(of: address4) { target.copyMemory(from: $0) }
            }
            return
        }
        var address6 = sockaddr_in6()
        if inet_pton(AF_INET6, numericHost, &address6.sin6_addr) == 1 {
            address6.sin6_family = sa_family_t(AF_INET6)
            address6.sin6_port = in_port_t(UInt16(port).bigEndian)
            length = socklen_t(MemoryLayout<sockaddr_in6>.size)
            withUnsafeMutableBytes(of: &storage) { target in
                withUnsafeBytes(of: address6) { target.copyMemory(from: $0) }
            }
            return
        }
        throw SystemError(function: "bind: host \"\(host)\" is not a numeric IP address", errno: EINVAL)
    }

    init(storage: sockaddr_storage) {
        self.storage = storage
        self.length = socklen_t(MemoryLayout<sockaddr_storage>.size)
    }

    var family: Int32 { Int32(storage.ss_family) }

    /// The numeric host, without brackets ("127.0.0.1", "::1").
    public var host: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        var storage = storage
        return withUnsafePointer(to: &storage) { pointer -> String in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { address in
                    var inner = address.pointee.sin_addr
                    guard inet_ntop(AF_INET, &inner, &buffer, socklen_t(buffer.count)) != nil else { return "" }
                    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { address in
                    var inner = address.pointee.sin6_addr
                    guard inet_ntop(AF_INET6, &inner, &buffer, socklen_t(buffer.count)) != nil else { return "" }
                    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    // Report IPv4-mapped peers as plain IPv4 so trusted-proxy lists match either way.
                    return text.hasPrefix("::ffff:") && text.utf8.contains(UInt8(ascii: ".")) ? String(text.dropFirst(7)) : text
                }
            default:
                return ""
            }
        }
    }

    public var port: Int {
        var storage = storage
        return withUnsafePointer(to: &storage) { pointer -> Int in
            switch Int32(pointer.pointee.ss_family) {
            case AF_INET:
                return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
            case AF_INET6:
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            default:
                return 0
            }
        }
    }

    public var description: String { family == AF_INET6 ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

extension String {
    fileprivate func trimmingBrackets() -> String {
        hasPrefix("[") && hasSuffix("]") ? String(dropFirst().dropLast()) : self
    }
}

/// A non-blocking listening TCP socket; closed when dropped or on `descriptor.close()`.
public struct ListeningSocket: ~Copyable, Sendable {
    public let descriptor: FileDescriptor
    public let address: SocketAddress

    /// Hands the socket's ownership to the caller (the address is a copy it can keep).
    public consuming func takeDescriptor() -> FileDescriptor { descriptor }

    /// Binds and listens. `reusePort` lets every event loop own a listener on the same port so the
    /// kernel spreads new connections across loops without a shared accept lock.
    public static func bind(to address: SocketAddress, backlog: Int32, reusePort: Bool) throws(SystemError) -> ListeningSocket {
        // Dropped (and so closed) by a throw on the way.
        let socket = try SystemCall.socket(family: address.family)
        try SystemCall.setOption(socket.rawValue, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
        if reusePort { try SystemCall.setOption(socket.rawValue, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1) }
        try bind(socket.rawValue, to: address)
        try SystemCall.listen(socket.rawValue, backlog: backlog)
        let bound = SocketAddress(storage: try SystemCall.localAddress(socket.rawValue))
        return ListeningSocket(descriptor: socket, address: bound)
    }

    /// Throws `EADDRINUSE` when anything already listens on `address`, even with `SO_REUSEPORT`.
    ///
    /// Sockets that all set `SO_REUSEPORT` may share a port, and Linux lets any process of the same
    /// user join: a second gateway started on a busy port would silently take part of its traffic.
    /// A plain bind (no listen, so it never accepts a connection) fails against such sockets.
    public static func probeUnused(_ address: SocketAddress) throws(SystemError) {
        let socket = try SystemCall.socket(family: address.family)
        try SystemCall.setOption(socket.rawValue, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
        try bind(socket.rawValue, to: address)
    }

    private static func bind(_ fd: Int32, to address: SocketAddress) throws(SystemError) {
        var storage = address.storage
        do {
            try withUnsafePointer(to: &storage) { pointer throws(SystemError) in
                try pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { socketAddress throws(SystemError) in
                    try SystemCall.bind(fd, socketAddress, length: address.length)
                }
            }
        } catch {
            throw SystemError(function: "bind \(address)", errno: error.errno)
        }
    }
}

/// A connection `SocketIO.accept` took from a listener; its descriptor closes when dropped.
public struct AcceptedSocket: ~Copyable, Sendable {
    public let descriptor: FileDescriptor
    public let peer: SocketAddress

    /// Hands the connection's ownership to the caller.
    public consuming func takeDescriptor() -> FileDescriptor { descriptor }
}

/// Socket operations the server needs on accepted connections.
public enum SocketOptions {
    public static func disableNagle(_ fd: Int32) {
        try? SystemCall.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
    }

    public static func resetOnClose(_ fd: Int32) { SystemCall.setLingerZero(fd) }
}

/// Non-blocking I/O on connected sockets, for the layers above (errno handling stays in `SystemCall`).
public enum SocketIO {
    public static func read(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try SystemCall.read(fd, buffer)
    }

    /// Writes as much of `buffers` as the socket takes in one call, skipping the first
    /// `firstOffset` bytes of `buffers[0]` (already written). At most 16 buffers are used per call.
    public static func write(_ fd: Int32, _ buffers: [[UInt8]], firstOffset: Int) throws(SystemError) -> IOResult<Int> {
        let count = min(buffers.count, 16)
        guard count > 0 else { return .processed(0) }
        // The arrays outlive the call because `buffers` is borrowed for its whole duration.
        return try withExtendedLifetime(buffers) { () throws(SystemError) -> IOResult<Int> in
            try withUnsafeTemporaryAllocation(of: iovec.self, capacity: count) { vectors throws(SystemError) in
                for index in 0..<count {
                    let offset = index == 0 ? firstOffset : 0
                    buffers[index].withUnsafeBytes { bytes in
                        vectors[index] = iovec(
                            iov_base: UnsafeMutableRawPointer(mutating: bytes.baseAddress.map { $0 + offset }),
                            iov_len: bytes.count - offset
                        )
                    }
                }
                return try SystemCall.writev(fd, UnsafeBufferPointer(vectors))
            }
        }
    }

    /// Writes as much of `first` followed by `second` as the socket takes, in one call: a response
    /// head and its body leave together without being copied into one buffer first.
    public static func write(
        _ fd: Int32,
        _ first: UnsafeRawBufferPointer,
        _ second: UnsafeRawBufferPointer
    ) throws(SystemError) -> IOResult<Int> {
        guard !second.isEmpty else { return try SystemCall.write(fd, first) }
        return try withUnsafeTemporaryAllocation(of: iovec.self, capacity: 2) { vectors throws(SystemError) in
            vectors[0] = iovec(iov_base: UnsafeMutableRawPointer(mutating: first.baseAddress), iov_len: first.count)
            vectors[1] = iovec(iov_base: UnsafeMutableRawPointer(mutating: second.baseAddress), iov_len: second.count)
            return try SystemCall.writev(fd, UnsafeBufferPointer(vectors))
        }
    }

    public static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) -> IOResult<Int> {
        try SystemCall.write(fd, bytes)
    }

    /// The next pending connection on the listener `fd`, or nil when none is waiting.
    public static func accept(_ fd: Int32) throws(SystemError) -> AcceptedSocket? {
        guard let accepted = try SystemCall.accept(fd) else { return nil }
        return AcceptedSocket(
            descriptor: FileDescriptor(taking: accepted.descriptor),
            peer: SocketAddress(storage: accepted.address)
        )
    }

    public static func shutdownWrite(_ fd: Int32) { SystemCall.shutdownWrite(fd) }
}

/// Blocking or non-blocking writes to descriptors that are not sockets (standard output, pipes).
public enum DescriptorIO {
    /// Writes all of `bytes`, retrying partial writes. Stops early, returning false, when the
    /// descriptor fails or is non-blocking and full.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let remaining = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            guard case .processed(let written) = try? SystemCall.writeDescriptor(fd, remaining), written > 0 else { return false }
            offset += written
        }
        return true
    }
}
