import GatewayHTTP
import GatewayJSON
import GatewayServer
@testable import ProviderSimulator
import Synchronization

/// 2025-11-20T10:00:00Z.
let fixedNow: Int64 = 1_763_632_800_000

/// A settable wall clock for deterministic timestamps, inserts and rate-limit windows.
final class FakeClock: Sendable {
    private let value: Mutex<Int64>

    init(_ start: Int64 = fixedNow) { value = Mutex(start) }

    var now: Int64 { value.withLock { $0 } }

    func advance(milliseconds: Int64) { value.withLock { $0 += milliseconds } }
}

/// Records the waits the simulator asks for instead of waiting.
final class SleepRecorder: Sendable {
    private let waits = Mutex<[Int]>([])

    var recorded: [Int] { waits.withLock { $0 } }

    func record(_ milliseconds: Int) { waits.withLock { $0.append(milliseconds) } }
}

func makeSimulator(
    executions: Int = 40,
    seed: UInt64 = 7,
    clock: FakeClock = FakeClock(),
    sleeper: SleepRecorder = SleepRecorder(),
    configure: (inout SimulatorConfiguration) -> Void = { _ in }
) -> ProviderSimulator {
    var configuration = SimulatorConfiguration(
        seed: seed,
        executionsPerOrganization: executions,
        now: { clock.now },
        sleep: { milliseconds in sleeper.record(milliseconds) }
    )
    configure(&configuration)
    return ProviderSimulator(configuration: configuration)
}

@discardableResult
func send(
    _ responder: any HTTPResponder,
    _ method: HTTPMethod,
    _ target: String,
    headers: [(String, String)] = [],
    body: String? = nil
) async -> HTTPResponse {
    var allHeaders = HTTPHeaders(headers)
    if body != nil && allHeaders["Content-Type"] == nil { allHeaders.add(name: "Content-Type", value: "application/json") }
    if allHeaders["Host"] == nil { allHeaders.add(name: "Host", value: "sim.test") }
    let request = HTTPRequest(method: method, target: target, headers: allHeaders, body: Array((body ?? "").utf8))
    return await responder.respond(to: request, context: RequestContext())
}

func kaizenList(_ simulator: ProviderSimulator, _ body: String = "{}", key: String = DemoCredential.kaizen) async -> HTTPResponse {
    await send(simulator.kaizen, .post, "/executions/list", headers: [("Authorization", "Bearer \(key)")], body: body)
}

func kaizenGet(_ simulator: ProviderSimulator, _ id: String, key: String = DemoCredential.kaizen) async -> HTTPResponse {
    await send(simulator.kaizen, .post, "/executions/get", headers: [("Authorization", "Bearer \(key)")], body: #"{"id":\#(jsonQuoted(id))}"#)
}

func kapsoGet(_ simulator: ProviderSimulator, _ path: String, key: String = DemoCredential.kapso) async -> HTTPResponse {
    await send(simulator.kapso, .get, "/platform/v1" + path, headers: [("X-API-Key", key)])
}

func b3osGet(_ simulator: ProviderSimulator, _ target: String, key: String = DemoCredential.b3os, organization: String? = nil) async -> HTTPResponse {
    var headers = [("Authorization", "Bearer \(key)")]
    if let organization { headers.append(("X-Org-ID", organization)) }
    return await send(simulator.b3os, .get, target, headers: headers)
}

extension HTTPResponse {
    /// The body parsed as JSON, or `.null` when it is not JSON (tests then fail on the fields).
    var json: JSONValue { (try? JSONParser.parse(body)) ?? .null }
    var text: String { String(decoding: body, as: UTF8.self) }
}

extension JSONValue {
    subscript(key: String) -> JSONValue {
        objectValue?[key] ?? .null
    }

    subscript(index: Int) -> JSONValue {
        guard let array = arrayValue, index >= 0, index < array.count else { return .null }
        return array[index]
    }

    var array: [JSONValue] { arrayValue ?? [] }
    var string: String? { stringValue }
    var int: Int? {
        if case .integer(let value) = self { return Int(value) }
        return nil
    }
    var bool: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }
    var keys: [String] { objectValue?.keys ?? [] }
}

/// `text` as a JSON string literal, through the project's one escaper.
func jsonQuoted(_ text: String) -> String {
    var writer = JSONWriter()
    writer.string(text)
    return String(decoding: writer.bytes, as: UTF8.self)
}
