import Foundation
import GatewayHTTP
import GatewayTestSupport
import GatewayUpstream
import Testing

/// TLS verification and HTTP/2 against a real TLS server: nginx (Debian's nginx-light, installed by
/// .ci/run) with a certificate from a throw-away CA made by the openssl command-line tool.
@Suite(.serialized) struct TLSAndHTTP2Tests {
    /// A running nginx serving `/hello` over TLS with HTTP/2, and the CA that signed its certificate.
    final class TLSServer: @unchecked Sendable {
        // @unchecked: every stored property is set once in init; only `stop()` touches the process.
        let directory: URL
        let port: Int
        let caPath: String
        private let process: ChildProcess

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            let path = directory.path
            try Self.shell("""
                openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=test-ca -keyout ca.key -out ca.pem \
                    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign
                openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr
                printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' > ext.cnf
                openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext.cnf -out server.pem
                """, in: path)
            port = try unusedLoopbackPort()
            caPath = directory.appendingPathComponent("ca.pem").path
            let configuration = """
                worker_processes 1;
                daemon off;
                pid \(path)/nginx.pid;
                error_log \(path)/error.log;
                events { worker_connections 64; }
                http {
                    access_log \(path)/access.log;
                    client_body_temp_path \(path)/body;
                    proxy_temp_path \(path)/proxy;
                    fastcgi_temp_path \(path)/fastcgi;
                    uwsgi_temp_path \(path)/uwsgi;
                    scgi_temp_path \(path)/scgi;
                    log_format protocol '$server_protocol';
                    server {
                        listen 127.0.0.1:\(port) ssl http2;
                        ssl_certificate \(path)/server.pem;
                        ssl_certificate_key \(path)/server.key;
                        access_log \(path)/protocol.log protocol;
                        location = /hello { default_type application/json; return 200 '{"hello":"tls"}'; }
                    }
                }
                """
            try configuration.write(to: directory.appendingPathComponent("nginx.conf"), atomically: true, encoding: .utf8)
            // Never the test runner's own output: a server left running would hold its pipe open,
            // and the runner would wait for the end of that output forever.
            process = try ChildProcess("/usr/sbin/nginx", ["-c", directory.appendingPathComponent("nginx.conf").path, "-p", path])
            do {
                try waitUntilListening(port: port)
            } catch {
                process.send(SIGTERM)
                throw error
            }
        }

        /// Makes the certificates and starts nginx, waiting on a thread of its own (see `onOwnThread`).
        static func start() async throws -> TLSServer {
            try await onOwnThread { () throws -> TLSServer in try TLSServer() }
        }

        /// Stops nginx; it is reaped, and its directory removed, on a thread of its own.
        func stop() {
            process.send(SIGTERM)
            Thread { [self] in
                process.waitUntilExit()
                try? FileManager.default.removeItem(at: directory)
            }.start()
        }

        var protocolsSeen: [String] {
            ((try? String(contentsOf: directory.appendingPathComponent("protocol.log"), encoding: .utf8)) ?? "")
                .split(separator: "\n").map(String.init)
        }

        static func shell(_ script: String, in directory: String) throws {
            // The directory is the script's `$0`.
            let process = try ChildProcess("/bin/sh", ["-ec", "cd \"$0\"\n" + script, directory])
            process.waitUntilExit()
            guard process.terminationStatus == 0 else { throw TLSSetupError.commandFailed(script) }
        }
    }

    enum TLSSetupError: Error { case commandFailed(String) }

    @Test func negotiatesHTTP2WhenTheUpstreamOffersItAndVerifiesTheCertificate() async throws {
        let server = try await TLSServer.start()
        defer { server.stop() }
        let client = try CurlHTTPClient(configuration: CurlHTTPClientConfiguration(caBundlePath: server.caPath))
        defer { client.shutdown() }
        for _ in 0..<3 {
            let response = try await client.execute(UpstreamRequest(url: "https://127.0.0.1:\(server.port)/hello"))
            #expect(response.status == 200)
            #expect(String(decoding: response.body, as: UTF8.self) == #"{"hello":"tls"}"#)
        }
        #expect(client.clientStatistics().connectionsOpened == 1, "one TLS connection, reused")
        // nginx flushes access logs as it writes them; give it a moment on a loaded machine.
        var protocols: [String] = []
        for _ in 0..<500 where protocols.count < 3 {
            protocols = server.protocolsSeen
            try await Task.sleep(nanoseconds: 20_000_000)
        }
        #expect(protocols == ["HTTP/2.0", "HTTP/2.0", "HTTP/2.0"])
    }

    @Test func refusesAServerItCannotVerify() async throws {
        let server = try await TLSServer.start()
        defer { server.stop() }
        // The system trust store does not know the throw-away CA: verification must fail.
        let client = try CurlHTTPClient()
        defer { client.shutdown() }
        await #expect(throws: UpstreamError.self) {
            _ = try await client.execute(UpstreamRequest(url: "https://127.0.0.1:\(server.port)/hello"))
        }
        #expect(server.protocolsSeen.isEmpty, "no request reached the server")
    }
}
