import ArgumentParser
import Foundation
import GatewayServer
import Logging
import ProviderSimulator
import ServiceLifecycle

@main
struct ProviderSimulatorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "provider-simulator",
        abstract: "Serve simulated Kaizen, Kapso and B3OS APIs with deterministic data.",
        discussion: """
        Kaizen: POST /executions/list, POST /executions/get
                (Authorization: Bearer <key>)
        Kapso:  GET <base>/workflows, <base>/workflows/{id}/executions,
                <base>/workflow_executions/{id} (X-API-Key: <key>)
        B3OS:   GET /v1/executions, /v1/executions/{id}
                (Authorization: Bearer <key>, optional X-Org-ID)

        Demo keys, two organisations per provider:
          demo-kaizen-key, demo-kaizen-key-2
          demo-kapso-key, demo-kapso-key-2
          b3sk_demo_acme_7f3c9a (org_demo_acme; org_demo_globex via X-Org-ID)
          b3sk_demo_globex_51d2e8 (org_demo_globex)
          b3sk_demo_noscope_0b4e11 (no read scope: 403)

        Runtime control on every provider's port (no key needed):
          POST   /__sim/executions  {"count","organization","at","status","fields"}
                                    ("fields": members that replace those of the records as served,
                                     e.g. {"at": "1678-01-01T00:00:00Z",
                                           "fields": {"finishedAt": "2262-04-01T00:00:00Z"}})
          POST   /__sim/finish      {"ids","outcome": "succeeded"|"failed"}
          POST   /__sim/faults      one fault, an array, or {"faults": [...]}
          GET    /__sim/faults      DELETE /__sim/faults
          GET    /__sim/counters    POST /__sim/reset

        A fault is {"kind": K, ...}, K one of latency (latencyMs), status
        (status, retryAfterSeconds), rateLimit (retryAfterSeconds), timeout,
        reset, truncate (afterBytes), malformedJSON. Narrow it with
        "endpoint" (list, detail, workflows, other, any), "credential",
        "fromCall"/"toCall" or "count" (calls counted from when the fault
        is set) and "probability" (0..1). Example, the next Kaizen detail
        call answers 503:
          curl -X POST localhost:18081/__sim/faults \\
            -d '{"kind":"status","status":503,"endpoint":"detail","count":1}'
        """
    )

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Kaizen's port (0 picks a free one).")
    var kaizenPort = 18081

    @Option(help: "Kapso's port (0 picks a free one).")
    var kapsoPort = 18082

    @Option(help: "B3OS's port (0 picks a free one).")
    var b3osPort = 18083

    @Option(help: "Seed for the generated data; the same seed gives the same data.")
    var seed: UInt64 = 1

    @Option(help: "Executions generated per organisation and provider.")
    var executions = 60

    @Option(help: "Kaizen executions per organisation (default: --executions).")
    var kaizenExecutions: Int?

    @Option(help: "Kapso executions per organisation (default: --executions).")
    var kapsoExecutions: Int?

    @Option(help: "B3OS executions per organisation (default: --executions).")
    var b3osExecutions: Int?

    @Option(help: "Workflows per organisation.")
    var workflows = 5

    @Option(help: "Add one running execution per organisation every N milliseconds (applied as requests arrive).")
    var insertEveryMs: Int64?

    @Option(help: "Latency added to every provider API answer, in milliseconds.")
    var latencyMs = 0

    @Option(help: "Path prefix of the Kapso API (\"\" for none).")
    var kapsoBasePath = "/platform/v1"

    @Option(help: "Kapso requests allowed per key and minute.")
    var kapsoRateLimit = 1000

    @Option(help: "B3OS requests allowed per key and minute (default: unlimited).")
    var b3osRateLimit: Int?

    mutating func validate() throws {
        for (name, port) in [("--kaizen-port", kaizenPort), ("--kapso-port", kapsoPort), ("--b3os-port", b3osPort)]
        where !(0...65535).contains(port) {
            throw ValidationError("\(name) must be between 0 and 65535, got \(port)")
        }
        guard (0...100_000).contains(executions) else { throw ValidationError("--executions must be between 0 and 100000") }
        for (name, count) in [("--kaizen-executions", kaizenExecutions), ("--kapso-executions", kapsoExecutions), ("--b3os-executions", b3osExecutions)] {
            if let count, !(0...1_000_000).contains(count) { throw ValidationError("\(name) must be between 0 and 1000000") }
        }
        guard (1...1000).contains(workflows) else { throw ValidationError("--workflows must be between 1 and 1000") }
        if let insertEveryMs, insertEveryMs <= 0 { throw ValidationError("--insert-every-ms must be positive") }
        guard latencyMs >= 0 else { throw ValidationError("--latency-ms must not be negative") }
        guard kapsoRateLimit >= 1 else { throw ValidationError("--kapso-rate-limit must be at least 1") }
        if let b3osRateLimit, b3osRateLimit < 1 { throw ValidationError("--b3os-rate-limit must be at least 1") }
    }

    func run() async throws {
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let logger = Logger(label: "provider-simulator")
        var configuration = SimulatorConfiguration(
            seed: seed,
            executionsPerOrganization: executions,
            workflowsPerOrganization: workflows,
            insertEveryMilliseconds: insertEveryMs,
            latencyMilliseconds: latencyMs,
            kapsoBasePath: kapsoBasePath,
            kapsoRequestsPerMinute: kapsoRateLimit,
            b3osRequestsPerMinute: b3osRateLimit
        )
        for (provider, count) in [(SimulatedProvider.kaizen, kaizenExecutions), (.kapso, kapsoExecutions), (.b3os, b3osExecutions)] {
            if let count { configuration.executionsPerOrganization[provider] = count }
        }
        let simulator = ProviderSimulator(configuration: configuration)
        let servers = [(SimulatedProvider.kaizen, kaizenPort), (.kapso, kapsoPort), (.b3os, b3osPort)].map { provider, port in
            (provider, HTTPServer(
                configuration: HTTPServerConfiguration(host: host, port: port, workers: 1, injectsTransportFaults: true),
                responder: simulator.responder(for: provider),
                logger: Logger(label: "provider-simulator.\(provider.rawValue)")
            ))
        }
        for (provider, server) in servers {
            do {
                try server.start()
            } catch {
                for (_, started) in servers { await started.shutdown() }
                throw ValidationError("cannot serve \(provider.rawValue): \(error)")
            }
        }
        var banner = ""
        for (provider, server) in servers {
            let base = provider == .kapso ? simulator.configuration.normalizedKapsoBasePath : ""
            banner += "\(provider.rawValue): http://\(host):\(server.localPort)\(base)\n"
        }
        banner += "Try: curl -s -X POST http://\(host):\(servers[0].1.localPort)/executions/list"
            + " -H 'Authorization: Bearer \(DemoCredential.kaizen)' -d '{}'\n"
        // Unbuffered, so the addresses show at once even when stdout is a pipe.
        FileHandle.standardOutput.write(Data(banner.utf8))
        let group = ServiceGroup(
            services: servers.map { $0.1 },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        try await group.run()
    }
}
