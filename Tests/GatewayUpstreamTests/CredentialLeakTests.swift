import GatewayHTTP
@testable import GatewayUpstream
import Testing

/// Everything this module emits (error descriptions in every form, log lines with metadata,
/// request descriptions) is searched for the credential; it must never appear.
@Suite struct CredentialLeakTests {
    let credential = "sk_live_7f3a9c1e5b2d4680"

    private func rendered(_ error: any Error) -> [String] {
        [String(describing: error), String(reflecting: error), "\(error)", (error as? UpstreamError)?.description ?? ""]
    }

    private func outcome(_ body: () async throws(UpstreamError) -> UpstreamResponse) async -> UpstreamError? {
        do throws(UpstreamError) {
            _ = try await body()
            return nil
        } catch {
            return error
        }
    }

    @Test func nothingTheEndpointEmitsContainsTheCredential() async throws {
        let logs = LogCapture()
        let clock = TestClock()
        let credential = self.credential
        let transport = ScriptedTransport { request, index throws(UpstreamError) in
            switch index {
            case 0: return UpstreamResponse(status: 401, body: Array("invalid key \(credential)".utf8))
            case 1: return UpstreamResponse(status: 429, headers: ["Retry-After": "5"], body: Array(credential.utf8))
            case 2, 3: throw .connection(reason: "reset by peer")
            default: return UpstreamResponse(status: 500, body: Array(credential.utf8))
            }
        }
        var policy = fastPolicy(maxRetries: 1)
        policy.circuitBreaker.failureThreshold = 2
        let endpoint = UpstreamEndpoint(
            name: "kaizen", policy: policy, transport: transport, clock: clock, logger: logs.logger())
        let headers: HTTPHeaders = ["Authorization": "Bearer \(credential)"]
        let request = UpstreamRequest(method: .post, url: "https://kaizen.test/executions/list", headers: headers)

        var errors: [UpstreamError] = []
        for key in ["a", "a", "a", "b", "b", "c"] {
            let error = await outcome { () throws(UpstreamError) in
                try await endpoint.execute(request, options: makeOptions(credentialKey: key))
            }
            if let error { errors.append(error) }
        }

        // The credential really was in play: in the request, and echoed back in a body the caller may read.
        #expect(transport.requests.allSatisfy { $0.headers["Authorization"] == "Bearer \(credential)" })
        guard case .httpStatus(401, let body, _) = errors.first else {
            Issue.record("expected the 401 first, got \(errors)")
            return
        }
        #expect(String(decoding: body, as: UTF8.self).contains(credential))
        // And the scenario produced the interesting log lines.
        let lines = logs.all
        #expect(lines.contains { $0.contains("pause") })
        #expect(lines.contains { $0.contains("circuit opened") })
        #expect(lines.contains { $0.contains("retrying") })
        #expect(Set(errors.map { UpstreamCallOutcome($0) }).isSuperset(of: [.httpError, .paused, .circuitOpen]))

        let haystack = lines + errors.flatMap(rendered) + [request.description, String(reflecting: request)]
        for text in haystack {
            #expect(!text.contains(credential), "leaked in: \(text)")
        }
    }

    @Test func nothingTheCurlClientEmitsContainsTheCredential() async throws {
        let logs = LogCapture()
        let client = try CurlHTTPClient(logger: logs.logger(label: "curl"))
        defer { client.shutdown() }
        let endpoint = UpstreamEndpoint(
            name: "b3os", policy: fastPolicy(maxRetries: 1), transport: client, logger: logs.logger())
        let listener = try SilentListener()
        let refusedPort = try SilentListener.closedPort()
        let headers: HTTPHeaders = ["Authorization": "Bearer \(credential)", "X-Org-ID": "org_1"]

        var errors: [UpstreamError] = []
        for url in ["http://127.0.0.1:\(refusedPort)/v1/executions", "http://127.0.0.1:\(listener.port)/v1/executions"] {
            let request = UpstreamRequest(url: url, headers: headers, timeoutNanoseconds: 150 * millisecond)
            if let error = await outcome({ () throws(UpstreamError) in try await endpoint.execute(request, options: makeOptions()) }) {
                errors.append(error)
            }
        }
        var injected = headers
        injected.replaceOrAdd(name: "Authorization", value: "Bearer \(credential)\r\nX-Injected: 1")
        let injectedRequest = UpstreamRequest(url: "http://127.0.0.1:\(listener.port)/", headers: injected)
        if let error = await outcome({ () throws(UpstreamError) in try await client.execute(injectedRequest) }) {
            errors.append(error)
        }
        let userInfo = UpstreamRequest(url: "http://key:\(credential)@127.0.0.1:\(listener.port)/")
        if let error = await outcome({ () throws(UpstreamError) in try await client.execute(userInfo) }) {
            errors.append(error)
        }

        #expect(errors.count == 4)
        #expect(!logs.all.isEmpty)
        let haystack = logs.all + errors.flatMap(rendered) + [injectedRequest.description, userInfo.description]
        for text in haystack {
            #expect(!text.contains(credential), "leaked in: \(text)")
        }
    }
}
