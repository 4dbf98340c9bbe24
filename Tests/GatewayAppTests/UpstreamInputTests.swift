import ExecutionsAPI
import GatewayApp
import GatewayConfig
import GatewayHTTP
import GatewayJSON
import GatewayTestSupport
import ProviderSimulator
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Issue 15, items 1, 6 and 7 through a whole gateway: hostile upstream records, a cap on a page's
/// bytes, and client errors that carry nothing internal.
@Suite struct UpstreamInputTests {
    static let earliest = "1678-01-01T00:00:00Z"
    static let latest = "2262-04-01T00:00:00Z"

    /// A record each provider's simulator serves as no real run would: created (started) in 1678,
    /// finished in 2262, so its duration overflows Int64 nanoseconds; Kaizen's has no `durationMs`.
    static func insertHostileRecords(into simulator: ProviderSimulator) throws -> [String] {
        let at = Int64(-9_214_560_000_000)  // 1678-01-01T00:00:00Z in Unix milliseconds
        let b3os = try simulator.insertExecutions(
            provider: .b3os, organizationID: "org_demo_acme", atUnixMilliseconds: at, status: "workflow_succeeded",
            fields: ["startedAt": .string(earliest), "finishedAt": .string(latest)]
        )
        let kapso = try simulator.insertExecutions(
            provider: .kapso, organizationID: "org_kp_acme", atUnixMilliseconds: at, status: "ended", fields: ["ended_at": .string(latest)]
        )
        let kaizen = try simulator.insertExecutions(
            provider: .kaizen, organizationID: "org_kz_acme", atUnixMilliseconds: at, status: "Completed",
            fields: ["endTime": .string(latest), "durationMs": .null]
        )
        return b3os.map { "b3os:" + $0.id } + kapso.map { "kapso:" + $0.id } + kaizen.map { "kaizen:" + $0.id }
    }

    @Test func recordsSpanning1678To2262AreListedWithANullDurationAndTheRestUnaffected() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let hostile = try Self.insertHostileRecords(into: harness.simulator)
        #expect(hostile.count >= 3)
        let listed = try await harness.get("/executions?limit=100&createdBefore=1700-01-01T00:00:00Z")
        #expect(listed.status == 200)
        let items = listed.json["data"]?.arrayValue ?? []
        #expect(Set(items.compactMap { $0["id"]?.stringValue }) == Set(hostile))
        for item in items {
            #expect(item["durationMs"] == .null)
            #expect(item["createdAt"]?.stringValue == Self.earliest)
        }
        for id in hostile {
            let detail = try await harness.get("/executions/\(id)")
            #expect(detail.status == 200)
            #expect(detail.json["data"]?["durationMs"] == .null)
        }
        let everything = try await harness.get("/executions?limit=100")
        #expect(everything.status == 200)
        #expect(everything.json["complete"] == true)
        #expect((everything.json["data"]?.arrayValue ?? []).contains { $0["durationMs"]?.integerValue != nil })
    }

    @Test func aRecordWithAnUnrepresentableCreationInstantIsSkippedWithALoggedReasonAndTheRestListed() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let unreadable = try harness.simulator.insertExecutions(
            provider: .b3os, organizationID: "org_demo_acme", fields: ["createdAt": .string("9999-12-31T23:59:59Z")]
        )
        let requestID = "skipped-record-1"
        let listed = try await harness.get("/executions?provider=b3os&limit=10", headers: ["X-Request-Id": requestID])
        #expect(listed.status == 200)
        #expect(listed.json["complete"] == true)
        #expect(listed.ids.count == 10)
        #expect(!listed.ids.contains { id in unreadable.contains { id.hasSuffix($0.id) } })
        let logged = harness.logLines.all.filter { $0.contains("provider record skipped") && $0.contains(requestID) }
        #expect(logged.contains { $0.contains("createdAt") && $0.contains("b3os") })
    }

    @Test func aPagePastTheByteCapIsRefusedNamingLimitAndInclude() async throws {
        let harness = try await GatewayHarness { configuration in
            configuration.server.maxResponseBytes = 16_384
        }
        defer { Task { await harness.stop() } }
        let large = try await harness.get("/executions?limit=100&include=raw,detail")
        #expect(large.status == 400)
        #expect(large.headers["Content-Type"] == "application/problem+json")
        #expect(large.json["type"]?.stringValue == "https://executions-gateway.dev/problems/response-too-large")
        #expect(large.json["detail"]?.stringValue?.contains("16384 bytes") == true)
        let named = large.json["invalidParams"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
        #expect(named == ["limit", "include"])
        let small = try await harness.get("/executions?limit=2")
        #expect(small.status == 200)
        #expect(small.body.count <= 16_384)
    }

    @Test func anUnreachableProviderIsNamedWithoutHostPortOrLibcurlTextWhichGoToTheLog() async throws {
        let refusing = try RefusingPort()
        let harness = try await GatewayHarness { configuration in
            if let index = configuration.providers.firstIndex(where: { $0.name == "b3os" }) {
                configuration.providers[index].baseURL = "http://127.0.0.1:\(refusing.port)"
            }
        }
        defer { Task { await harness.stop() } }
        let requestID = "unreachable-b3os-1"
        let strict = try await harness.get("/executions?provider=b3os&allowPartial=false", headers: ["X-Request-Id": requestID])
        #expect(strict.status == 502)
        let partial = try await harness.get("/executions?limit=3")
        #expect(partial.status == 200)
        let report = partial.json["providers"]?.arrayValue?.first { $0["name"]?.stringValue == "b3os" }
        let details = [strict.json["detail"]?.stringValue, report?["error"]?["detail"]?.stringValue]
        for detail in details {
            let text = try #require(detail)
            #expect(text.contains("'b3os'"))
            for leaked in ["127.0.0.1", String(refusing.port), "onnect", "curl", "port"] {
                #expect(!text.contains(leaked), "'\(leaked)' in: \(text)")
            }
        }
        let logged = harness.logLines.all.filter { $0.contains(requestID) && $0.contains("provider call failed") }
        #expect(logged.contains { $0.contains(String(refusing.port)) && $0.contains("b3os") })
    }

    @Test func anUnknownProviderIsAnsweredWithOnlyTheProvidersTheClientMayUse() async throws {
        let harness = try await GatewayHarness()
        defer { Task { await harness.stop() } }
        let answer = try await harness.get("/executions?provider=nope", key: GatewayHarness.kaizenOnlyKey)
        #expect(answer.status == 400)
        let reason = try #require(answer.json["invalidParams"]?.arrayValue?.first?["reason"]?.stringValue)
        #expect(reason.contains("kaizen"))
        #expect(!reason.contains("kapso"))
        #expect(!reason.contains("b3os"))
    }
}

/// A loopback port bound but never listening: connecting is refused at once, and no other test can
/// take the port while this holds it.
final class RefusingPort {
    let descriptor: Int32
    let port: Int

    struct SetupFailed: Error {}

    init() throws {
        do {
            (descriptor, port) = try boundLoopbackSocket(listening: false)
        } catch {
            throw SetupFailed()
        }
    }

    deinit { close(descriptor) }
}
