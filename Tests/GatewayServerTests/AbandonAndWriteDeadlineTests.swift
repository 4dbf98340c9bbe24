import GatewayHTTP
import GatewayServer
import GatewayTestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Requests whose client has gone, and responses a client drains too slowly.
@Suite struct AbandonAndWriteDeadlineTests {
    @Test func aClientThatClosesWhileItsRequestIsInFlightCancelsTheRequestsTask() async throws {
        let started = Gate()
        let released = Gate()
        let cancelled = Flag()
        var router = testRouter()
        router.get("/until-cancelled") { _, _ in
            started.open()
            await withTaskCancellationHandler {
                await released.wait()
            } onCancel: {
                cancelled.set()
                released.open()
            }
            return HTTPResponse(status: .ok, text: "finished")
        }
        try await withServer(responder: router) { server in
            let client = try RawClient(port: server.localPort)
            try await client.send("GET /until-cancelled HTTP/1.1\r\nHost: x\r\n\r\n")
            await started.wait()
            Glibc.shutdown(client.fd, Int32(SHUT_RDWR))
            #expect(await waitUntil { cancelled.isSet }, "the handler saw its task cancelled")
            #expect(await waitUntil { server.counters.openConnections == 0 })
        }
    }

    /// The judgement call: a FIN while a request is in flight means the client has gone, even
    /// when it only shut down its write side (as nginx decides with `proxy_ignore_client_abort off`).
    @Test func aClientThatShutsDownItsWriteSideMidRequestIsTreatedAsGone() async throws {
        let held = HeldRequest()
        try await withServer(responder: held.router()) { server in
            let client = try RawClient(port: server.localPort)
            try await client.send("GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
            await held.waitUntilStarted()
            client.shutdownWrite()
            let (bytes, end) = await client.readUntilClose()
            #expect(bytes.isEmpty)
            #expect(end == .closed)
            held.release()
        }
    }

    /// 20 MB drained at 16 KiB every 20 ms would take over ten seconds, each write making progress
    /// long before the 1 s deadline: only a deadline over the whole response cuts it off.
    @Test func theWriteDeadlineBoundsTheWholeResponseNotEachPartialWrite() async throws {
        var configuration = HTTPServerConfiguration.forTests()
        configuration.writeTimeout = .nanoseconds(1_000_000_000)
        let bodyBytes = 20_000_000
        try await withServer(configuration) { server in
            let client = try RawClient(port: server.localPort)
            var small: Int32 = 16_384
            setsockopt(client.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
            try await client.send("GET /big/\(bodyBytes) HTTP/1.1\r\nHost: x\r\n\r\n")
            let (received, endedByServer) = await onOwnThread { () -> (Int, Bool) in
                var buffer = [UInt8](repeating: 0, count: 16_384)
                var total = 0
                while true {
                    let count = buffer.withUnsafeMutableBytes { recv(client.fd, $0.baseAddress, $0.count, 0) }
                    if count == 0 { return (total, true) }
                    if count < 0 { return (total, errno == ECONNRESET) }
                    total += count
                    usleep(20_000)
                }
            }
            #expect(endedByServer, "the server ended the response (not the client's receive timeout)")
            #expect(received < bodyBytes, "cut off before the whole body: \(received) bytes")
        }
    }

    @Test(arguments: [
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
        "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n",
    ])
    func aServerThatTakesNoBodiesRefusesOneFromTheHeadAndNeverSendsContinue(request: String) async throws {
        var configuration = HTTPServerConfiguration.forTests()
        configuration.parserLimits.acceptsBodies = false
        try await withServer(configuration) { server in
            let client = try RawClient(port: server.localPort)
            // The body is never sent: the final answer must not wait for it.
            try await client.send(request)
            let (bytes, _) = await client.readUntilClose()
            #expect(TestResponse.parseAll(bytes).map(\.status) == [413])
            #expect(!String(decoding: bytes, as: UTF8.self).contains("100 Continue"))
        }
    }

    @Test func aServerThatTakesNoBodiesStillAnswersAnEmptyOne() async throws {
        var configuration = HTTPServerConfiguration.forTests()
        configuration.parserLimits.acceptsBodies = false
        try await withServer(configuration) { server in
            let client = try RawClient(port: server.localPort)
            let responses = await client.roundTrips(["GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"])
            #expect(responses.first??.status == 200)
        }
    }
}
