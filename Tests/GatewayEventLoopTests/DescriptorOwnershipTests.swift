@testable import GatewayEventLoop
import GatewayTestSupport
import Glibc
import Synchronization
import Testing

/// Counts the events handed to it by its loop.
private final class CountingHandler: IOEventHandler, Sendable {
    let calls = Atomic<Int>(0)
    func handle(_ events: IOEvents) { calls.add(1, ordering: .relaxed) }
    var count: Int { calls.load(ordering: .relaxed) }
}

/// A pipe's two raw descriptors; the tests close them by hand, as the kernel would see any program do.
private func makePipe() -> (read: Int32, write: Int32) {
    var ends: [Int32] = [-1, -1]
    let result = pipe(&ends)
    precondition(result == 0, "pipe failed")
    return (ends[0], ends[1])
}

@Suite struct DescriptorOwnershipTests {
    @Test func droppingAFileDescriptorClosesIt() {
        let ends = makePipe()
        defer { close(ends.read) }
        do {
            _ = FileDescriptor(taking: ends.write)
        }
        // With its only write end closed, the pipe reads as end of file instead of blocking.
        var byte: UInt8 = 0
        #expect(read(ends.read, &byte, 1) == 0)
    }

    @Test func consumingCloseClosesOnce() {
        let ends = makePipe()
        defer { close(ends.read) }
        let descriptor = FileDescriptor(taking: ends.write)
        descriptor.close()
        var byte: UInt8 = 0
        #expect(read(ends.read, &byte, 1) == 0)
    }

    @Test func closingADescriptorClosedBehindItsBackStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            var ends: [Int32] = [-1, -1]
            _ = pipe(&ends)
            let descriptor = FileDescriptor(taking: ends[1])
            _ = Glibc.close(ends[1])
            descriptor.close()
        }
    }

    @Test func userDataCarriesTheDescriptorAndItsRegistration() {
        let userData = EPollUserData(fd: 1_234, registrationID: .max - 1)
        #expect(EPollUserData(rawValue: userData.rawValue) == userData)
        #expect(userData.rawValue & 0xFFFF_FFFF == 1_234)
    }

    @Test func anEventForAnEndedRegistrationIsDroppedWhenItsNumberIsReused() async throws {
        let first = CountingHandler()
        let second = CountingHandler()
        let original = makePipe()
        let replacement = makePipe()
        let stale = Mutex<(data: UInt64, current: UInt64)?>(nil)
        let loop = try await EventLoopTests.onLoop { loop in
            do {
                try loop.register(original.read, interest: .readable, handler: first)
                guard let staleData = loop.registeredUserData(original.read) else { return }
                loop.unregister(original.read)
                // Closes the original read end and gives its number to the replacement pipe at once,
                // as accept(2) does with the lowest free number.
                guard dup2(replacement.read, original.read) == original.read else { return }
                try loop.register(original.read, interest: .readable, handler: second)
                guard let currentData = loop.registeredUserData(original.read) else { return }
                stale.withLock { $0 = (staleData, currentData) }
                // An event epoll queued for the first registration, delivered after the reuse.
                loop.dispatch(.readable, userData: staleData)
            } catch {
                return
            }
        }
        let data = try #require(stale.withLock { $0 })
        #expect(data.data != data.current)
        #expect(first.count == 0)
        #expect(second.count == 0, "a stale event reached the descriptor's new owner")

        // The new registration still gets its real events through epoll.
        var byte: UInt8 = 1
        #expect(write(replacement.write, &byte, 1) == 1)
        #expect(await waitUntil { second.count > 0 })
        loop.execute { loop.unregister(original.read) }
        loop.stop()
        await loop.waitUntilStopped()
        for fd in [original.read, original.write, replacement.read, replacement.write] { _ = close(fd) }
    }
}

@Suite struct DescriptorIOTests {
    @Test func writeAllDeliversEveryByteToAPipe() {
        let ends = makePipe()
        defer { close(ends.read); close(ends.write) }
        let bytes: [UInt8] = Array("one line\n".utf8)
        #expect(bytes.withUnsafeBytes { DescriptorIO.writeAll(ends.write, $0) })
        var received = [UInt8](repeating: 0, count: bytes.count)
        #expect(read(ends.read, &received, received.count) == bytes.count)
        #expect(received == bytes)
    }

    @Test func writeAllGivesUpOnAFullNonBlockingPipe() {
        let ends = makePipe()
        defer { close(ends.read); close(ends.write) }
        _ = fcntl(ends.write, F_SETFL, fcntl(ends.write, F_GETFL) | O_NONBLOCK)
        // More than a pipe holds (64 KiB by default), with nobody reading.
        let bytes = [UInt8](repeating: 0x61, count: 1 << 20)
        #expect(!bytes.withUnsafeBytes { DescriptorIO.writeAll(ends.write, $0) })
    }
}
