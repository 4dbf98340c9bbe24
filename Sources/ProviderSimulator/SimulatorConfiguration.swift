import Foundation

/// The three upstream APIs the simulator reproduces.
public enum SimulatedProvider: String, Sendable, CaseIterable, Hashable, Codable {
    case kaizen
    case kapso
    case b3os
}

/// An organisation (tenant) of a simulated provider; each has its own workflows and executions.
public struct SimulatedOrganization: Sendable, Hashable {
    public let provider: SimulatedProvider
    public let id: String
    public let name: String

    public init(provider: SimulatedProvider, id: String, name: String) {
        self.provider = provider
        self.id = id
        self.name = name
    }
}

/// An API key a simulated provider accepts.
public struct SimulatedCredential: Sendable, Hashable {
    public let provider: SimulatedProvider
    public let key: String
    /// The organisations the key may read; the first is used when the request names none
    /// (only B3OS lets a request choose, with `X-Org-ID`).
    public let organizationIDs: [String]
    /// False for a key that authenticates but lacks the read scope (B3OS answers 403).
    public let canReadExecutions: Bool

    public init(provider: SimulatedProvider, key: String, organizationIDs: [String], canReadExecutions: Bool = true) {
        self.provider = provider
        self.key = key
        self.organizationIDs = organizationIDs
        self.canReadExecutions = canReadExecutions
    }
}

/// Known demo keys, documented so the demo and tests can use them by name.
public enum DemoCredential {
    public static let kaizen = "demo-kaizen-key"
    public static let kaizenSecondOrganization = "demo-kaizen-key-2"
    public static let kapso = "demo-kapso-key"
    public static let kapsoSecondOrganization = "demo-kapso-key-2"
    /// Member of both B3OS organisations; `org_demo_acme` unless `X-Org-ID` picks another.
    public static let b3os = "b3sk_demo_acme_7f3c9a"
    public static let b3osSecondOrganization = "b3sk_demo_globex_51d2e8"
    /// Authenticates but lacks the `executions:read` scope.
    public static let b3osWithoutReadScope = "b3sk_demo_noscope_0b4e11"
}

public struct SimulatorConfiguration: Sendable {
    /// Seeds every generated value; the same seed and clock give the same world.
    public var seed: UInt64
    /// Executions generated per organisation, per provider (a provider not listed gets 60).
    public var executionsPerOrganization: [SimulatedProvider: Int]
    /// Workflows per organisation.
    public var workflowsPerOrganization: Int
    /// When set, every organisation of every provider gains one new running execution each
    /// time this many milliseconds of the simulator's clock pass (applied when a request arrives,
    /// so a fake clock drives it without timers).
    public var insertEveryMilliseconds: Int64?
    /// Added to every provider API answer (control endpoints excepted).
    public var latencyMilliseconds: Int
    /// Path prefix of the Kapso API ("/platform/v1" like the real base URL; "" for none).
    public var kapsoBasePath: String
    /// Kapso's per-key, per-minute request limit.
    public var kapsoRequestsPerMinute: Int
    /// B3OS's per-key, per-minute request limit; nil for none.
    public var b3osRequestsPerMinute: Int?
    /// How long a `timeout` fault holds the request before answering 504 (cancellable).
    public var timeoutFaultMilliseconds: Int
    /// The wall clock in Unix epoch milliseconds. Generated data is laid out back from the
    /// clock's value when the simulator is created or reset.
    public var now: @Sendable () -> Int64
    /// How latency and timeout faults wait; tests replace it to observe waits without waiting.
    public var sleep: @Sendable (_ milliseconds: Int) async -> Void

    public init(
        seed: UInt64 = 1,
        executionsPerOrganization: Int = 60,
        workflowsPerOrganization: Int = 5,
        insertEveryMilliseconds: Int64? = nil,
        latencyMilliseconds: Int = 0,
        kapsoBasePath: String = "/platform/v1",
        kapsoRequestsPerMinute: Int = 1000,
        b3osRequestsPerMinute: Int? = nil,
        timeoutFaultMilliseconds: Int = 3_600_000,
        now: @escaping @Sendable () -> Int64 = SimulatorConfiguration.systemMilliseconds,
        sleep: @escaping @Sendable (_ milliseconds: Int) async -> Void = SimulatorConfiguration.taskSleep
    ) {
        self.seed = seed
        self.executionsPerOrganization = Dictionary(uniqueKeysWithValues: SimulatedProvider.allCases.map { ($0, executionsPerOrganization) })
        self.workflowsPerOrganization = workflowsPerOrganization
        self.insertEveryMilliseconds = insertEveryMilliseconds
        self.latencyMilliseconds = latencyMilliseconds
        self.kapsoBasePath = kapsoBasePath
        self.kapsoRequestsPerMinute = kapsoRequestsPerMinute
        self.b3osRequestsPerMinute = b3osRequestsPerMinute
        self.timeoutFaultMilliseconds = timeoutFaultMilliseconds
        self.now = now
        self.sleep = sleep
    }

    func executionCount(for provider: SimulatedProvider) -> Int {
        max(0, executionsPerOrganization[provider] ?? 60)
    }

    /// The normalised Kapso prefix: "" or "/segment/...", never a trailing slash.
    public var normalizedKapsoBasePath: String {
        let segments = kapsoBasePath.split(separator: "/", omittingEmptySubsequences: true)
        return segments.isEmpty ? "" : "/" + segments.joined(separator: "/")
    }

    public static let systemMilliseconds: @Sendable () -> Int64 = {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// Sleeps until done or until the task is cancelled (a cancelled client stops waiting).
    public static let taskSleep: @Sendable (_ milliseconds: Int) async -> Void = { milliseconds in
        guard milliseconds > 0 else { return }
        try? await Task.sleep(nanoseconds: UInt64(min(milliseconds, Int(UInt64.max / 1_000_000 / 2))) * 1_000_000)
    }
}

extension ProviderSimulator {
    /// Every organisation the simulator serves.
    public static let organizations: [SimulatedOrganization] = [
        SimulatedOrganization(provider: .kaizen, id: "org_kz_acme", name: "Acme Robotics"),
        SimulatedOrganization(provider: .kaizen, id: "org_kz_globex", name: "Globex 東京"),
        SimulatedOrganization(provider: .kapso, id: "org_kp_acme", name: "Acme Robotics"),
        SimulatedOrganization(provider: .kapso, id: "org_kp_globex", name: "Globex São Paulo"),
        SimulatedOrganization(provider: .b3os, id: "org_demo_acme", name: "Acme Robotics"),
        SimulatedOrganization(provider: .b3os, id: "org_demo_globex", name: "Globex Zürich"),
    ]

    /// Every key the simulator accepts, with the organisations it reaches.
    public static let demoCredentials: [SimulatedCredential] = [
        SimulatedCredential(provider: .kaizen, key: DemoCredential.kaizen, organizationIDs: ["org_kz_acme"]),
        SimulatedCredential(provider: .kaizen, key: DemoCredential.kaizenSecondOrganization, organizationIDs: ["org_kz_globex"]),
        SimulatedCredential(provider: .kapso, key: DemoCredential.kapso, organizationIDs: ["org_kp_acme"]),
        SimulatedCredential(provider: .kapso, key: DemoCredential.kapsoSecondOrganization, organizationIDs: ["org_kp_globex"]),
        SimulatedCredential(provider: .b3os, key: DemoCredential.b3os, organizationIDs: ["org_demo_acme", "org_demo_globex"]),
        SimulatedCredential(provider: .b3os, key: DemoCredential.b3osSecondOrganization, organizationIDs: ["org_demo_globex"]),
        SimulatedCredential(
            provider: .b3os, key: DemoCredential.b3osWithoutReadScope, organizationIDs: ["org_demo_acme"], canReadExecutions: false
        ),
    ]

    static func organizations(of provider: SimulatedProvider) -> [SimulatedOrganization] {
        organizations.filter { $0.provider == provider }
    }

    static func credential(_ key: String, provider: SimulatedProvider) -> SimulatedCredential? {
        demoCredentials.first { $0.provider == provider && $0.key == key }
    }
}
