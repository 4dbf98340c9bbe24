// What the three providers' generated worlds have in common. Each provider keeps its own
// records, statuses and rendering; finding an organisation, generating its initial schedule,
// inserting executions and finishing them follow one set of rules for all three, written here.

import GatewayEventLoop
import GatewayJSON

/// A provider's own status names (`InProgress`, `running`, `workflow_running`, ...).
protocol SimulatedStatus: RawRepresentable, CaseIterable, Equatable, Sendable where RawValue == String {
    /// A terminal status: `finish` never touches such an execution again.
    var isFinished: Bool { get }
}

extension SimulatedStatus {
    /// The status `text` names in the provider's spelling, or `fallback` when it names none.
    static func named(_ text: String?, default fallback: Self, provider: SimulatedProvider) throws(SimulatorControlError) -> Self {
        guard let text else { return fallback }
        guard let status = Self(rawValue: text) else {
            throw SimulatorControlError("unknown \(provider.displayName) status '\(text)'")
        }
        return status
    }
}

protocol SimulatedExecution: Sendable {
    associatedtype Status: SimulatedStatus
    var id: String { get }
    var status: Status { get }
    /// The creation instant (Kaizen's and Kapso's start) and id.
    var sortKey: ListOrderKey { get }
    /// Members that replace (or add to) the record as the list and detail answers render it, set
    /// through the control API: how tests serve a hostile record (impossible instants, a missing
    /// or negative duration) that the simulator itself would never make.
    var fieldOverrides: JSONObject { get set }
}

extension JSONValue {
    /// An object record with `overrides` applied; any other value as it is.
    func overriding(_ overrides: JSONObject) -> JSONValue {
        guard !overrides.isEmpty, var object = objectValue else { return self }
        for member in overrides { object[member.key] = member.value }
        return .object(object)
    }
}

/// Where an execution stands in its provider's list. All three list newest first, executions
/// created at the same instant by id descending; Kapso's cursors carry this key.
struct ListOrderKey: Sendable, Comparable {
    let milliseconds: Int64
    let id: String

    static func < (lhs: ListOrderKey, rhs: ListOrderKey) -> Bool {
        lhs.milliseconds != rhs.milliseconds ? lhs.milliseconds < rhs.milliseconds : lhs.id < rhs.id
    }
}

extension Sequence where Element: SimulatedExecution {
    /// In the providers' list order.
    func newestFirst() -> [Element] { sorted { $0.sortKey > $1.sortKey } }
}

protocol SimulatedOrganizationData: Sendable {
    associatedtype Execution: SimulatedExecution
    var organization: SimulatedOrganization { get }
    var executions: [Execution] { get set }
}

protocol SimulatedStore: Sendable {
    associatedtype OrganizationData: SimulatedOrganizationData
    typealias Execution = OrganizationData.Execution
    var organizations: [OrganizationData] { get set }
    /// Draws for executions inserted or finished after the start; the organisations' initial
    /// data comes from generators of their own, so live changes never shift the seeded world.
    var random: SplitMix64 { get set }
}

extension SimulatedStore {
    func organization(_ id: String) -> OrganizationData? {
        organizations.first { $0.organization.id == id }
    }

    func executions(of organizationID: String) -> [Execution] {
        organization(organizationID)?.executions ?? []
    }

    /// Adds `count` executions made by `make` to each of `targets`, in order.
    mutating func insert(
        count: Int, into targets: [SimulatedOrganization], make: (OrganizationData, inout SplitMix64) -> Execution
    ) -> [InsertedExecution] {
        var inserted: [InsertedExecution] = []
        for target in targets {
            guard let index = organizations.firstIndex(where: { $0.organization.id == target.id }) else { continue }
            for _ in 0..<count {
                let data = organizations[index]
                let execution = make(data, &random)
                organizations[index].executions.append(execution)
                inserted.append(InsertedExecution(organizationID: target.id, id: execution.id))
            }
        }
        return inserted
    }

    /// Sets the record overrides of the executions named by `ids`.
    mutating func overrideFields(ids: Set<String>, with overrides: JSONObject) {
        for organization in organizations.indices {
            for index in organizations[organization].executions.indices where ids.contains(organizations[organization].executions[index].id) {
                organizations[organization].executions[index].fieldOverrides = overrides
            }
        }
    }

    /// Applies `finishing` to the unfinished executions named by `ids`, or, when none are named,
    /// to every execution in `runningStatus`. Returns the ids finished.
    mutating func finish(
        ids: [String]?, runningStatus: Execution.Status, finishing: (inout Execution, inout SplitMix64) -> Void
    ) -> [String] {
        var finished: [String] = []
        for organization in organizations.indices {
            for index in organizations[organization].executions.indices {
                var execution = organizations[organization].executions[index]
                let selected = ids.map { $0.contains(execution.id) && !execution.status.isFinished } ?? (execution.status == runningStatus)
                guard selected else { continue }
                finishing(&execution, &random)
                organizations[organization].executions[index] = execution
                finished.append(execution.id)
            }
        }
        return finished
    }
}

extension SimulatedProvider {
    /// The provider's name as its own documentation spells it.
    var displayName: String {
        switch self {
        case .kaizen: "Kaizen"
        case .kapso: "Kapso"
        case .b3os: "B3OS"
        }
    }
}

// MARK: - Initial data

/// The start instants and statuses of an organisation's initial executions, newest first: the
/// provider's configured count, on a timeline with deliberate ties, statuses drawn by `weight`
/// with every status present when the count allows.
func generatedSchedule<Status: SimulatedStatus>(
    of provider: SimulatedProvider, configuration: SimulatorConfiguration, newest: Int64, granularityMilliseconds: Int64,
    random: inout SplitMix64, weight: (Status) -> Int
) -> [(startTime: Int64, status: Status)] {
    let count = configuration.executionCount(for: provider)
    let times = generatedTimeline(count: count, newest: newest, granularityMilliseconds: granularityMilliseconds, random: &random)
    let statuses = generatedStatuses(count: count, all: Array(Status.allCases), random: &random, weight: weight)
    return Array(zip(times, statuses))
}

/// `count` instants, newest first, the newest shortly before `newest`, with deliberate ties so
/// that ordering by id as a tie-break is exercised. Values are multiples of the granularity.
func generatedTimeline(count: Int, newest: Int64, granularityMilliseconds: Int64, random: inout SplitMix64) -> [Int64] {
    var times: [Int64] = []
    times.reserveCapacity(count)
    var current = newest - random.int64(in: 5_000...120_000)
    for index in 0..<count {
        if index > 0 {
            if random.chance(0.15) {
                // same instant as the previous execution
            } else {
                current -= random.int64(in: 1_000...2_700_000)
            }
        }
        times.append(current - ((current % granularityMilliseconds) + granularityMilliseconds) % granularityMilliseconds)
    }
    return times
}

/// Statuses for `count` executions (index 0 newest) drawn by weight, with every status present
/// at least once when `count` allows.
func generatedStatuses<Status: Equatable>(
    count: Int, all: [Status], random: inout SplitMix64, weight: (Status) -> Int
) -> [Status] {
    var statuses = (0..<count).map { _ in random.weighted(all.map { ($0, weight($0)) }) }
    guard count >= all.count else { return statuses }
    var reserved: Set<Int> = []
    for status in all where !statuses.contains(status) {
        var slot = random.int(in: 0...(count - 1))
        while reserved.contains(slot) || statuses.filter({ $0 == statuses[slot] }).count < 2 {
            slot = (slot + 1) % count
        }
        statuses[slot] = status
        reserved.insert(slot)
    }
    return statuses
}
