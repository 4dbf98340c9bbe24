import GatewayConfig
import GatewayJSON
import ProviderSimulator
import Testing

/// The whole gateway at a size that broke it before provider indexes (the CI slice of
/// `scripts/bench-scale`, which runs the full size): a Kaizen organisation whose one list answer
/// is over 16 MiB, and Kapso workflows that each page used to read again.
@Suite struct ListingAtScaleTests {
    /// No refresh may become due during the walk, and no deadline may end the one read: a debug
    /// build reading 23 MB while every other suite runs can take tens of seconds.
    static func patientOnALoadedMachine(_ configuration: inout GatewayConfiguration) {
        configuration.cache.listTTL = .seconds(600)
        configuration.server.requestTimeout = .seconds(600)
        for index in configuration.providers.indices { configuration.providers[index].timeout = .seconds(600) }
    }

    @Test func aKaizenListLargerThanSixteenMebibytesServesEveryPageFromOneRead() async throws {
        var simulatorConfiguration = SimulatorConfiguration(seed: 5, executionsPerOrganization: 20, workflowsPerOrganization: 8)
        simulatorConfiguration.executionsPerOrganization[.kaizen] = 20_000
        let harness = try await GatewayHarness(simulatorConfiguration: simulatorConfiguration, adjust: Self.patientOnALoadedMachine)
        defer { Task { await harness.stop() } }

        let first = try await harness.get("/executions?provider=kaizen&limit=100")
        #expect(first.status == 200, "\(String(decoding: first.body.prefix(400), as: UTF8.self))")
        #expect(first.ids.count == 100)
        let report = first.json["providers"]?.arrayValue?.first
        #expect(first.json["complete"]?.boolValue == true, "\(String(describing: report))")
        #expect(report?["asOf"]?.stringValue != nil)

        var ids = first.ids
        var cursor = first.nextCursor
        for _ in 0..<9 {
            let page = try await harness.get("/executions?cursor=\(try #require(cursor))")
            #expect(page.status == 200)
            ids += page.ids
            cursor = page.nextCursor
        }
        #expect(ids.count == 1_000 && Set(ids).count == 1_000)
        let expected = harness.simulator.executionIDs(provider: .kaizen, organizationID: "org_kz_acme").prefix(1_000).map { "kaizen:" + $0 }
        #expect(ids.elementsEqual(expected), "the walk is the organisation's 1,000 newest executions, in order")
        #expect(harness.simulator.counters(provider: .kaizen).total == 1, "one list read serves the whole walk")
    }

    @Test func aKapsoOrganisationIsReadOnceAcrossAWalkNotOncePerPage() async throws {
        var simulatorConfiguration = SimulatorConfiguration(seed: 6, executionsPerOrganization: 20, workflowsPerOrganization: 60)
        simulatorConfiguration.executionsPerOrganization[.kapso] = 1_800
        let harness = try await GatewayHarness(simulatorConfiguration: simulatorConfiguration, adjust: Self.patientOnALoadedMachine)
        defer { Task { await harness.stop() } }

        let ids = try await harness.walk("/executions?provider=kapso&limit=100")
        let expected = harness.simulator.executionIDs(provider: .kapso, organizationID: "org_kp_acme").map { "kapso:" + $0 }
        #expect(ids.count == expected.count && ids.elementsEqual(expected), "every execution once, in order")
        // The workflow list once, then each workflow's pages (at most 100 each) once: not 61
        // calls for each of the 18 pages.
        let calls = harness.simulator.counters(provider: .kapso).total
        #expect(calls <= 1 + 60 * 2, "\(calls) upstream calls for \(ids.count) executions")
    }
}
