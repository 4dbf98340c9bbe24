import Foundation
import GatewayHTTP
import GatewayJSON
import GatewayServer
import GatewayTestSupport
@testable import ProviderSimulator
import Testing

/// Validates real simulator responses against the JSON Schemas derived from the seed documents,
/// with `scripts/validate-simulator-schemas.py` (Python `jsonschema`).
@Suite struct SchemaValidationTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Writes `samples` as `<schema>__<label>.json` into a fresh directory and runs the validator
    /// (on a thread of its own: it blocks while Python runs).
    func validate(_ samples: [(schema: String, body: [UInt8])], labels: [String]? = nil) async throws -> (status: Int32, output: String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("simulator-schemas-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for (index, sample) in samples.enumerated() {
            let label = labels?[index] ?? String(index)
            try Data(sample.body).write(to: directory.appendingPathComponent("\(sample.schema)__\(label).json"))
        }
        let script = Self.repositoryRoot.appendingPathComponent("scripts/validate-simulator-schemas.py").path
        return try await onOwnThread { () throws -> (Int32, String) in
            let process = try ChildProcess(
                "/usr/bin/env", ["python3", script, directory.path], standardOutput: .capture, standardError: .sameAsStandardOutput)
            let output = process.readStandardOutputToEnd()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: output, as: UTF8.self))
        }
    }

    /// Responses of every endpoint, every status and the error shapes.
    func collectSamples() async throws -> [(schema: String, body: [UInt8])] {
        let simulator = makeSimulator(executions: 40)
        var samples: [(String, [UInt8])] = []
        func add(_ schema: String, _ response: HTTPResponse, expecting status: HTTPStatus) {
            #expect(response.status == status, "\(schema): \(response.text.prefix(200))")
            samples.append((schema, response.body))
        }

        // Kaizen
        for key in [DemoCredential.kaizen, DemoCredential.kaizenSecondOrganization] {
            let list = await kaizenList(simulator, key: key)
            add("kaizen-list", list, expecting: .ok)
            var statuses: Set<String> = []
            for item in list.json["executions"].array {
                statuses.insert(item["status"].string ?? "")
                add("kaizen-get", await kaizenGet(simulator, item["id"].string ?? "", key: key), expecting: .ok)
            }
            #expect(statuses == Set(KaizenStatus.allCases.map(\.rawValue)))
        }
        add("kaizen-list", await kaizenList(simulator, #"{"status":"Paused","search":["zzz-nothing"]}"#), expecting: .ok)
        add("kaizen-error", await kaizenList(simulator, #"{"status":"nope"}"#), expecting: .badRequest)
        add("kaizen-error", await kaizenList(simulator, key: "bad"), expecting: .unauthorized)
        add("kaizen-error", await kaizenGet(simulator, "missing"), expecting: .notFound)

        // Kapso
        for key in [DemoCredential.kapso, DemoCredential.kapsoSecondOrganization] {
            let workflows = await kapsoGet(simulator, "/workflows", key: key)
            add("kapso-workflows", workflows, expecting: .ok)
            var statuses: Set<String> = []
            for workflow in workflows.json["data"].array {
                let id = workflow["id"].string ?? ""
                var target = "/workflows/\(id)/executions?limit=7"
                while true {
                    let page = await kapsoGet(simulator, target, key: key)
                    add("kapso-executions", page, expecting: .ok)
                    for item in page.json["data"].array {
                        statuses.insert(item["status"].string ?? "")
                        add("kapso-execution", await kapsoGet(simulator, "/workflow_executions/\(item["id"].string ?? "")", key: key), expecting: .ok)
                    }
                    guard let after = page.json["paging"]["cursors"]["after"].string, page.json["paging"]["next"].string != nil else { break }
                    target = "/workflows/\(id)/executions?limit=7&after=\(percentEncode(after))"
                }
            }
            #expect(statuses == Set(KapsoStatus.allCases.map(\.rawValue)))
        }
        let workflow = simulator.workflowIDs(provider: .kapso, organizationID: "org_kp_acme")[0]
        add("kapso-executions", await kapsoGet(simulator, "/workflows/\(workflow)/executions?status=failed&created_before=2000-01-01T00:00:00Z"), expecting: .ok)
        add("kapso-error", await kapsoGet(simulator, "/workflows/\(workflow)/executions?limit=0"), expecting: .badRequest)
        add("kapso-error", await kapsoGet(simulator, "/workflows", key: "bad"), expecting: .unauthorized)
        add("kapso-error", await kapsoGet(simulator, "/workflow_executions/nope"), expecting: .notFound)

        // B3OS
        for (key, organization) in [(DemoCredential.b3os, nil), (DemoCredential.b3os, "org_demo_globex")] as [(String, String?)] {
            var statuses: Set<String> = []
            for offset in stride(from: 0, to: 100, by: 30) {
                let page = await b3osGet(simulator, "/v1/executions?limit=30&offset=\(offset)", key: key, organization: organization)
                add("b3os-list", page, expecting: .ok)
                for item in page.json["data"]["items"].array {
                    statuses.insert(item["status"].string ?? "")
                    add("b3os-get", await b3osGet(simulator, "/v1/executions/\(item["id"].string ?? "")", key: key, organization: organization), expecting: .ok)
                }
            }
            #expect(statuses == Set(B3OSStatus.allCases.map(\.rawValue)))
        }
        add("b3os-error", await b3osGet(simulator, "/v1/executions?limit=500"), expecting: .badRequest)
        add("b3os-error", await b3osGet(simulator, "/v1/executions", key: "b3sk_bad"), expecting: .unauthorized)
        add("b3os-error", await b3osGet(simulator, "/v1/executions", key: DemoCredential.b3osWithoutReadScope), expecting: .forbidden)
        add("b3os-error", await b3osGet(simulator, "/v1/executions/nope"), expecting: .notFound)

        // Injected errors keep each provider's error shape.
        for provider in SimulatedProvider.allCases {
            simulator.setFault(SimulatedFault(.status(code: 503, retryAfterSeconds: 1), calls: 1...1), provider: provider)
            simulator.setFault(SimulatedFault(.rateLimited(retryAfterSeconds: 1), calls: 2...2), provider: provider)
        }
        for _ in 0..<2 {
            samples.append(("kaizen-error", await kaizenList(simulator).body))
            samples.append(("kapso-error", await kapsoGet(simulator, "/workflows").body))
            samples.append(("b3os-error", await b3osGet(simulator, "/v1/executions").body))
        }
        return samples
    }

    @Test func everyResponseMatchesTheSeedSchemas() async throws {
        let samples = try await collectSamples()
        #expect(samples.count > 250)
        let result = try await validate(samples)
        #expect(result.status == 0, "\(result.output)")
    }

    static let mutations = [
        "kaizen-list: extra field",
        "kaizen-list: missing required field",
        "kaizen-get: wrong type",
        "kapso-executions: extra field",
        "kapso-executions: started B3OS-style null",
        "b3os-list: missing field",
        "b3os-list: startedAt on a queued execution",
        "kaizen-list: bad timestamp",
    ]

    /// Each mutation is validated next to the same document unchanged, in one validator run:
    /// every mutated sample must be reported and no unchanged one.
    @Test func driftFromTheSchemasIsCaught() async throws {
        var samples: [(schema: String, body: [UInt8])] = []
        var labels: [String] = []
        for (index, mutation) in Self.mutations.enumerated() {
            let (schema, unchanged, mutated) = try await mutatedSample(mutation)
            samples += [(schema, mutated.serialized()), (schema, unchanged.serialized())]
            labels += ["broken\(index)", "intact\(index)"]
        }
        let result = try await validate(samples, labels: labels)
        #expect(result.status == 1)
        for (index, mutation) in Self.mutations.enumerated() {
            #expect(result.output.contains("__broken\(index).json:"), "\(mutation) was not caught: \(result.output)")
            #expect(!result.output.contains("__intact\(index).json:"), "\(result.output)")
        }
        #expect(result.output.contains("\(Self.mutations.count) valid, \(Self.mutations.count) invalid"))
    }

    func mutatedSample(_ mutation: String) async throws -> (schema: String, unchanged: JSONValue, mutated: JSONValue) {
        let simulator = makeSimulator(executions: 40)
        let schema: String
        var document: JSONValue
        var unchanged = JSONValue.null
        func mutateFirst(_ path: String, in value: JSONValue, _ change: (inout JSONObject) -> Void) -> JSONValue {
            unchanged = value
            guard var object = value.objectValue, var items = object[path]?.arrayValue, var first = items.first?.objectValue else { return value }
            change(&first)
            items[0] = .object(first)
            object[path] = .array(items)
            return .object(object)
        }
        switch mutation {
        case "kaizen-list: extra field":
            schema = "kaizen-list"
            document = mutateFirst("executions", in: await kaizenList(simulator).json) { $0["surprise"] = .bool(true) }
        case "kaizen-list: missing required field":
            schema = "kaizen-list"
            document = mutateFirst("executions", in: await kaizenList(simulator).json) { $0["truncatedParams"] = nil }
        case "kaizen-list: bad timestamp":
            schema = "kaizen-list"
            document = mutateFirst("executions", in: await kaizenList(simulator).json) { $0["startTime"] = .string("2025-11-20 10:00") }
        case "kaizen-get: wrong type":
            schema = "kaizen-get"
            let id = simulator.executionIDs(provider: .kaizen, organizationID: "org_kz_acme")[0]
            unchanged = await kaizenGet(simulator, id).json
            var execution = unchanged["execution"].objectValue ?? JSONObject()
            execution["attempts"] = .string("1")
            document = .object(["execution": .object(execution)])
        case "kapso-executions: extra field", "kapso-executions: started B3OS-style null":
            schema = "kapso-executions"
            var page = JSONValue.null
            for workflow in simulator.workflowIDs(provider: .kapso, organizationID: "org_kp_acme") {
                page = await kapsoGet(simulator, "/workflows/\(workflow)/executions").json
                if !page["data"].array.isEmpty { break }
            }
            document = mutateFirst("data", in: page) { item in
                if mutation.hasSuffix("extra field") { item["createdAt"] = .string("2025-11-20T10:00:00Z") } else { item["started_at"] = .null }
            }
        case "b3os-list: missing field", "b3os-list: startedAt on a queued execution":
            schema = "b3os-list"
            let fetched = await b3osGet(simulator, "/v1/executions").json
            var envelope = fetched.objectValue ?? JSONObject()
            let data = mutateFirst("items", in: envelope["data"] ?? .null) { item in
                if mutation.hasSuffix("missing field") {
                    item["runId"] = nil
                } else {
                    item["status"] = .string("workflow_queued")
                    item["startedAt"] = .string("2025-11-20T10:00:00Z")
                }
            }
            envelope["data"] = data
            document = .object(envelope)
            unchanged = fetched
        default:
            Issue.record("unknown mutation \(mutation)")
            schema = "unknown"
            document = .null
        }
        return (schema, unchanged, document)
    }

    @Test func theValidatorRefusesAnEmptySampleSet() async throws {
        #expect(try await validate([]).status == 2)
    }
}
