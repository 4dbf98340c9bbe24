import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

public enum PortError: Error { case noFreePort, nothingListening(port: Int) }

/// Ports this process has handed out. A test that stops its server and starts it again on the same
/// port (a Redis restart) must not find another test's server there: no port is handed out twice.
private let handedOutPorts = Mutex<Set<Int>>([])

/// A loopback port nothing listens on right now and that no test of this process was given before,
/// for a child process that must be told its port (nginx, redis-server, a gateway whose output is
/// not read). Another process may take it before the child binds it; tests that can use port 0 and
/// read the bound port back should.
public func unusedLoopbackPort() throws -> Int {
    for _ in 0..<1_000 {
        let port = try loopbackPortFreeNow()
        if handedOutPorts.withLock({ $0.insert(port).inserted }) { return port }
    }
    throw PortError.noFreePort
}

private func loopbackPortFreeNow() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw PortError.noFreePort }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A TCP socket bound to an ephemeral loopback port, listening when `listening`, and that port.
/// The caller owns (and closes) the descriptor.
public func boundLoopbackSocket(listening: Bool) throws -> (descriptor: Int32, port: Int) {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw PortError.noFreePort }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) { pointer in
        pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, length) == 0 && (!listening || listen(descriptor, 64) == 0)
                && getsockname(descriptor, $0, &length) == 0
        }
    }
    guard bound else {
        close(descriptor)
        throw PortError.noFreePort
    }
    return (descriptor, Int(UInt16(bigEndian: address.sin_port)))
}

/// Blocks until something accepts connections on the loopback `port`, for up to `seconds` (generous:
/// a child process starts slowly on a loaded machine). Call it off the cooperative pool.
public func waitUntilListening(port: Int, seconds: Int = 30) throws {
    let deadline = Date().addingTimeInterval(TimeInterval(seconds))
    while Date() < deadline {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        }
        close(fd)
        if connected { return }
        usleep(20_000)
    }
    throw PortError.nothingListening(port: port)
}
