import Foundation
import GatewayTestSupport
import Testing

/// The demo answers SIGTERM with a graceful drain and exit 0 from the moment it says it is running.
@Suite struct DemoSignalTests {
    /// Starts the demo on an ephemeral port and returns once its instructions name the address.
    static func startDemo() throws -> (process: ChildProcess, address: String) {
        let (process, printed) = try GatewayBinary.start(["demo", "--port", "0", "--log-level", "warning"], printingUntil: "Press Ctrl-C")
        let address = printed.split(separator: " ").first { $0.hasPrefix("http://127.0.0.1:") }.map(String.init) ?? ""
        return (process, address)
    }

    @Test(arguments: 1...5)
    func sigtermRightAfterTheAnnouncementExitsCleanly(_ attempt: Int) async throws {
        let (address, exited, status) = try await onOwnThread { () throws -> (String, Bool, Int32) in
            let (process, address) = try Self.startDemo()
            process.send(SIGTERM)
            process.waitUntilExit()
            return (address, process.exitedNormally, process.terminationStatus)
        }
        #expect(!address.isEmpty, "the demo announced where it listens")
        #expect(exited)
        #expect(status == 0, "attempt \(attempt): a signal in the first moments must not kill the demo")
    }

    /// Every command the demo suggests (those without a placeholder) answers 200, and each listing
    /// finds something: a suggested search that finds nothing teaches the wrong thing.
    @Test func everySuggestedListingFindsExecutions() async throws {
        let (printed, answers) = try await onOwnThread { () throws -> (String, [(String, TestResponse?)]) in
            let (process, printed) = try GatewayBinary.start(["demo", "--port", "0", "--log-level", "warning"], printingUntil: "Press Ctrl-C")
            defer {
                process.send(SIGTERM)
                process.waitUntilExit()
            }
            let urls = printed.split(separator: "\n").compactMap { line -> String? in
                guard line.contains("curl -s '"), !line.contains("<"),
                      let start = line.firstIndex(of: "'"), let end = line.lastIndex(of: "'"), start < end
                else { return nil }
                return String(line[line.index(after: start)..<end])
            }
            return (printed, try urls.map { url in
                let afterScheme = url.dropFirst("http://".count)
                let slash = afterScheme.firstIndex(of: "/") ?? afterScheme.endIndex
                let port = Int(afterScheme[..<slash].split(separator: ":").last ?? "") ?? 0
                let client = try RawClient(port: port)
                try client.sendBlocking(Array("GET \(afterScheme[slash...]) HTTP/1.1\r\nHost: demo\r\n\r\n".utf8))
                return (url, client.readResponseBlocking())
            })
        }
        let listings = answers.filter { $0.0.contains("/executions?") }
        #expect(listings.count >= 3, "\(printed)")
        #expect(listings.contains { $0.0.contains("q=") }, "a search is suggested")
        for (url, answer) in answers {
            let response = try #require(answer, "\(url)")
            #expect(response.status == 200, "\(url)")
            guard url.contains("/executions?") else { continue }
            let document: Any = try JSONSerialization.jsonObject(with: Data(response.body))
            let data: [Any] = ((document as? [String: Any])?["data"] as? [Any]) ?? []
            #expect(!data.isEmpty, "\(url) found nothing")
        }
    }

    @Test func aPortInUseIsAStartupErrorNotACrash() async throws {
        let (address, second) = try await onOwnThread { () throws -> (String, GatewayBinary.Result?) in
            let (first, address) = try Self.startDemo()
            defer {
                first.send(SIGTERM)
                first.waitUntilExit()
            }
            guard let port = address.split(separator: ":").last.map({ String($0) }) else { return (address, nil) }
            return (address, try GatewayBinary.runBlocking(["demo", "--port", port, "--log-level", "warning"], environment: [:]))
        }
        let refused = try #require(second, "the demo announced no port: \(address)")
        #expect(refused.status == 1)
        #expect(refused.standardError.contains("executions-gateway demo: cannot listen"))
    }
}
