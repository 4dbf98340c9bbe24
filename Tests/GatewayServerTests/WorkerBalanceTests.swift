import GatewayHTTP
import GatewayServer
import Logging
import Testing

/// New connections go to the worker loop with the fewest open connections, whichever loop's
/// listener the kernel woke, so no loop's clients queue behind an unlucky hash.
@Suite struct WorkerBalanceTests {
    @Test(arguments: [2, 3])
    func connectionsSpreadEvenlyOverTheLoops(workers: Int) async throws {
        try await withServer(HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: workers)) { server in
            var clients: [RawClient] = []
            for index in 0..<(7 * workers + 1) {
                let client = try RawClient(port: server.localPort)
                // Answered means registered on its loop: the next connection sees the updated counts.
                try await client.send("GET /items/\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(await client.readResponse()?.text == "item \(index) via /items/{id}")
                clients.append(client)
                let perWorker = server.openConnectionsPerWorker
                #expect(perWorker.count == workers)
                #expect(perWorker.reduce(0, +) == index + 1)
                #expect((perWorker.max() ?? 0) - (perWorker.min() ?? 0) <= 1, "\(perWorker)")
            }
            // Every connection still works from its loop after the hand-over.
            for (index, client) in clients.enumerated() {
                try await client.send("GET /items/\(index) HTTP/1.1\r\nHost: x\r\n\r\n")
                #expect(await client.readResponse()?.text == "item \(index) via /items/{id}")
            }
        }
    }

    @Test func closedConnectionsLeaveTheCounts() async throws {
        try await withServer(HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 2)) { server in
            for index in 0..<6 {
                let client = try RawClient(port: server.localPort)
                try await client.send("GET /items/\(index) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                _ = await client.readUntilClose()
            }
            var waited = 0
            while server.counters.openConnections > 0 && waited < 200 {
                try await Task.sleep(nanoseconds: 5_000_000)
                waited += 1
            }
            #expect(server.counters.openConnections == 0)
            #expect(server.openConnectionsPerWorker == [0, 0])
        }
    }

    @Test func shutdownClosesIdleConnectionsOnEveryLoop() async throws {
        var configuration = HTTPServerConfiguration(host: "127.0.0.1", port: 0, workers: 2)
        configuration.shutdownGraceNanoseconds = 5_000_000_000
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        let server = HTTPServer(configuration: configuration, responder: testRouter(), logger: logger)
        try server.start()
        var clients: [RawClient] = []
        for _ in 0..<8 {
            let client = try RawClient(port: server.localPort)
            try await client.send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(await client.readResponse()?.status == 200)
            clients.append(client)
        }
        #expect(server.openConnectionsPerWorker == [4, 4])
        await server.shutdown()
        #expect(server.counters.openConnections == 0)
        for client in clients {
            let (bytes, end) = await client.readUntilClose()
            #expect(bytes.isEmpty)
            #expect(end == .closed)
        }
    }
}
