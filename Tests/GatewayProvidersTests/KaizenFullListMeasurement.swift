import Foundation
import GatewayCache
import GatewayCrypto
@testable import GatewayProviders
import GatewayUpstream
import Testing

extension KaizenFullListTests {
    /// Off unless `BENCH_KAIZEN_URL` names a running simulator's Kaizen API, e.g.
    /// `provider-simulator --executions 100000 --kaizen-port 18081` and
    /// `BENCH_KAIZEN_URL=http://127.0.0.1:18081 swift test --filter KaizenFullListTests/measureFullList`:
    /// prints the wall time of one `fullList` and this process's resident memory before and at its peak.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["BENCH_KAIZEN_URL"] != nil))
    func measureFullList() async throws {
        let base = try #require(ProcessInfo.processInfo.environment["BENCH_KAIZEN_URL"])
        let client = try CurlHTTPClient(logger: SimulatorHarness.quietLogger("bench.curl"))
        defer { client.shutdown() }
        let endpoint = UpstreamEndpoint(
            name: "kz", policy: UpstreamPolicy(timeout: .seconds(600), requestsPerSecond: nil), transport: client,
            logger: SimulatorHarness.quietLogger("bench.endpoint"))
        let provider = try #require(try ProviderFactory.make(
            name: "kz", type: .kaizen, baseURL: base, endpoint: endpoint,
            cache: ResponseCache(store: MemoryLRUStore(maxBytes: 1024)), cachePolicy: ProviderCachePolicy(),
            logger: SimulatorHarness.quietLogger("bench.providers")) as? KaizenProvider)
        let call = UpstreamCallContext(
            credential: Self.key, credentialIdentity: SHA256.hexDigest(of: Self.key), requestID: "bench",
            traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", bypassCache: false)
        let before = Self.memoryStatus()
        let started = ContinuousClock.now
        let list = try await provider.fullList(call: call)
        let elapsed = ContinuousClock.now - started
        let after = Self.memoryStatus()
        print(
            "fullList: \(list.executions.count) executions, \(list.skippedRecords) skipped, \(list.answerBytes) answer bytes, "
                + "peak buffered \(list.peakBufferedBytes) bytes, wall \(elapsed); VmRSS before \(before["VmRSS"] ?? "?"), "
                + "after \(after["VmRSS"] ?? "?"), VmHWM (peak) \(after["VmHWM"] ?? "?")")
        #expect(list.executions.count > 0)
    }

    /// `VmRSS`, `VmHWM` and the other lines of /proc/self/status, by name.
    static func memoryStatus() -> [String: String] {
        let text = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1)
            if parts.count == 2 { fields[String(parts[0])] = parts[1].trimmingCharacters(in: .whitespaces) }
        }
        return fields
    }
}
