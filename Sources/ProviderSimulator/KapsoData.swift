// Kapso's world: WhatsApp conversation workflows and their executions.
//
// Field decision: the documented list item (id, started_at, last_event_at, ended_at, tracking_id,
// whatsapp_conversation_id, workflow, current_step) shows no `status`, yet the same endpoint
// filters by `status` and `waiting_reason`, the status-update endpoint "returns full execution
// data including the updated status", and a client needs the status to show an execution at all.
// The simulator therefore adds `status` and `waiting_reason` (null unless waiting) to list items
// and detail records; every other documented field is reproduced as documented. The detail
// record adds `execution_context`, `events` and `error_details` (null unless failed).

import GatewayEventLoop
import GatewayJSON

enum KapsoStatus: String, SimulatedStatus {
    case running
    case waiting
    case ended
    case failed
    case handoff

    var isFinished: Bool { self == .ended || self == .failed }
}

struct KapsoStep: Sendable {
    let id: String
    let identifier: String
    let stepableType: String
    let x: Int
    let y: Int

    var json: JSONValue {
        .object([
            "id": .string(id),
            "identifier": .string(identifier),
            "stepable_type": .string(stepableType),
            "position": .object(["x": .int(x), "y": .int(y)]),
        ])
    }
}

struct KapsoWorkflow: Sendable {
    let id: String
    let name: String
    let status: String
    let description: String?
    let createdAt: Int64
    let updatedAt: Int64
    let steps: [KapsoStep]

    var summary: JSONValue { .object(["id": .string(id), "name": .string(name), "status": .string(status)]) }

    /// `GET /workflows`' item. Kapso documents `last_executed_at` (null before the first run) and
    /// `execution_count`, which let a client skip workflows with nothing new since it last looked.
    func listItem(lastExecutedAt: Int64?, executionCount: Int) -> JSONValue {
        .object([
            "id": .string(id),
            "name": .string(name),
            "status": .string(status),
            "description": .optional(description),
            "created_at": .string(Timestamps.format(milliseconds: createdAt, style: .seconds)),
            "updated_at": .string(Timestamps.format(milliseconds: updatedAt, style: .seconds)),
            "last_executed_at": lastExecutedAt.map { .string(Timestamps.format(milliseconds: $0, style: .seconds)) } ?? .null,
            "execution_count": .int(executionCount),
        ])
    }
}

struct KapsoEvent: Sendable {
    let id: String
    let type: String
    let stepIdentifier: String?
    let payload: JSONObject
    let at: Int64

    var json: JSONValue {
        .object([
            "id": .string(id),
            "event_type": .string(type),
            "step_identifier": .optional(stepIdentifier),
            "payload": .object(payload),
            "created_at": .string(Timestamps.format(milliseconds: at, style: .seconds)),
        ])
    }
}

struct KapsoExecution: SimulatedExecution {
    let id: String
    let organizationID: String
    let workflow: KapsoWorkflow
    var status: KapsoStatus
    var waitingReason: String?
    let startedAt: Int64
    var lastEventAt: Int64
    var endedAt: Int64?
    let trackingID: String?
    let whatsappConversationID: String?
    var currentStep: KapsoStep?
    let context: JSONObject
    var events: [KapsoEvent]
    var errorMessage: String?
    var fieldOverrides: JSONObject = [:]

    var listItem: JSONValue { JSONValue.object(listFields).overriding(fieldOverrides) }

    var detail: JSONValue { generatedDetail.overriding(fieldOverrides) }

    private var listFields: JSONObject {
        [
            "id": .string(id),
            "started_at": .string(Timestamps.format(milliseconds: startedAt, style: .seconds)),
            "last_event_at": .string(Timestamps.format(milliseconds: lastEventAt, style: .seconds)),
            "ended_at": endedAt.map { .string(Timestamps.format(milliseconds: $0, style: .seconds)) } ?? .null,
            "tracking_id": .optional(trackingID),
            "whatsapp_conversation_id": .optional(whatsappConversationID),
            "workflow": workflow.summary,
            "current_step": currentStep?.json ?? .null,
            "status": .string(status.rawValue),
            "waiting_reason": .optional(waitingReason),
        ]
    }

    private var generatedDetail: JSONValue {
        var object = listFields
        object["execution_context"] = .object(context)
        object["events"] = .array(events.map(\.json))
        if status == .failed, let errorMessage {
            object["error_details"] = .object([
                "message": .string(errorMessage),
                "error_type": .string("StepExecutionError"),
                "step_identifier": .optional(currentStep?.identifier),
                "occurred_at": .string(Timestamps.format(milliseconds: endedAt ?? lastEventAt, style: .seconds)),
            ])
        } else {
            object["error_details"] = .null
        }
        return .object(object)
    }

    /// Kapso orders (and its cursors point) by (created_at, id), created_at being the start.
    var sortKey: ListOrderKey { ListOrderKey(milliseconds: startedAt, id: id) }

    mutating func finish(as outcome: KapsoStatus, at end: Int64, random: inout SplitMix64) {
        let end = max(end, lastEventAt)
        status = outcome
        waitingReason = nil
        endedAt = end
        lastEventAt = end
        if outcome == .failed {
            errorMessage = random.pick([
                "WhatsApp API returned 131047: re-engagement message outside the 24h window",
                "Function step timed out after 30 s",
                "Template 'order_update_ñ' is not approved",
            ])
            events.append(KapsoEvent(id: random.uuid(), type: "workflow_failed", stepIdentifier: currentStep?.identifier, payload: ["message": .optional(errorMessage)], at: end))
        } else {
            events.append(KapsoEvent(id: random.uuid(), type: "workflow_ended", stepIdentifier: currentStep?.identifier, payload: [:], at: end))
        }
    }
}

struct KapsoOrganizationData: SimulatedOrganizationData {
    let organization: SimulatedOrganization
    let workflows: [KapsoWorkflow]
    var executions: [KapsoExecution]
}

struct KapsoStore: SimulatedStore {
    var organizations: [KapsoOrganizationData]
    var random: SplitMix64

    init(configuration: SimulatorConfiguration, now: Int64) {
        random = SplitMix64(seed: configuration.seed, labels: "kapso", "inserts")
        organizations = ProviderSimulator.organizations(of: .kapso).map { organization in
            var random = SplitMix64(seed: configuration.seed, labels: "kapso", organization.id)
            let workflows = KapsoStore.makeWorkflows(count: configuration.workflowsPerOrganization, now: now, random: &random)
            var data = KapsoOrganizationData(organization: organization, workflows: workflows, executions: [])
            // Spread over all workflows, with the timeline per organisation so ties occur within workflows too.
            let schedule = generatedSchedule(
                of: .kapso, configuration: configuration, newest: now, granularityMilliseconds: 1000, random: &random
            ) { (status: KapsoStatus) in
                switch status {
                case .ended: 10
                case .failed: 2
                case .running, .waiting: 2
                case .handoff: 1
                }
            }
            for (index, (startedAt, status)) in schedule.enumerated() {
                // Ties land in the same workflow half of the time, so a single workflow's list has them.
                let workflow = index > 0 && startedAt == schedule[index - 1].startTime && random.chance(0.5)
                    ? data.executions[index - 1].workflow
                    : random.pick(workflows)
                data.executions.append(KapsoStore.makeExecution(
                    organizationID: organization.id, workflow: workflow, status: status, startedAt: startedAt, now: now, random: &random
                ))
            }
            return data
        }
    }

    static func makeWorkflows(count: Int, now: Int64, random: inout SplitMix64) -> [KapsoWorkflow] {
        let names = [
            "Order status bot", "Atención al cliente 🇲🇽", "Appointment reminders", "Lead qualification",
            "Pagamento pendente – lembrete", "Feedback survey ⭐", "Onboarding (Español)",
        ]
        let stepTypes = [
            ("send_welcome", "Workflow::Steps::SendText"), ("ask_order_number", "Workflow::Steps::WaitForResponse"),
            ("lookup_order", "Workflow::Steps::Function"), ("decide", "Workflow::Steps::Decide"),
            ("send_template", "Workflow::Steps::SendTemplate"), ("agent_handoff", "Workflow::Steps::Handoff"),
        ]
        return (0..<max(1, count)).map { index in
            let created = now - random.int64(in: 30...400) * Timestamps.millisecondsPerDay
            let createdSeconds = created - created % 1000
            let steps = stepTypes.enumerated().map { position, step in
                KapsoStep(id: random.uuid(), identifier: step.0, stepableType: step.1, x: 120 + position * 260, y: position % 2 == 0 ? 80 : 240)
            }
            return KapsoWorkflow(
                id: random.uuid(),
                name: names[index % names.count] + (index >= names.count ? " #\(index)" : ""),
                status: index == 0 ? "active" : random.weighted([("active", 6), ("draft", 1), ("archived", 1)]),
                description: random.chance(0.3) ? nil : "Handles inbound WhatsApp conversations for “\(names[index % names.count])”.",
                createdAt: createdSeconds,
                updatedAt: createdSeconds + random.int64(in: 1...20) * Timestamps.millisecondsPerDay,
                steps: steps
            )
        }
    }

    static func makeExecution(
        organizationID: String, workflow: KapsoWorkflow, status: KapsoStatus, startedAt: Int64, now: Int64, random: inout SplitMix64
    ) -> KapsoExecution {
        let stepCount = random.int(in: 1...workflow.steps.count)
        var events: [KapsoEvent] = [KapsoEvent(id: random.uuid(), type: "workflow_started", stepIdentifier: nil, payload: ["trigger": .string("inbound_message")], at: startedAt)]
        var time = startedAt
        for step in workflow.steps.prefix(stepCount) {
            time += random.int64(in: 1...90) * 1000
            events.append(KapsoEvent(
                id: random.uuid(), type: "step_executed", stepIdentifier: step.identifier,
                payload: ["stepable_type": .string(step.stepableType)], at: min(time, max(startedAt, now - now % 1000))
            ))
        }
        let lastEvent = events.last?.at ?? startedAt
        let conversation = random.chance(0.85) ? random.uuid() : nil
        var execution = KapsoExecution(
            id: random.uuid(),
            organizationID: organizationID,
            workflow: workflow,
            status: status,
            waitingReason: nil,
            startedAt: startedAt,
            lastEventAt: lastEvent,
            endedAt: nil,
            trackingID: random.chance(0.6) ? random.uuid() : nil,
            whatsappConversationID: conversation,
            currentStep: random.chance(0.05) ? nil : workflow.steps[stepCount - 1],
            context: [
                "vars": .object([
                    "customer_name": .string(random.pick(["María José", "João", "Zoë", "Ahmed", "李雷"])),
                    "order_id": .string("ORD-\(random.int(in: 1000...99999))"),
                ]),
                "system": .object([
                    "channel": .string("whatsapp"),
                    "phone_number": .string("+52155\(random.int(in: 10_000_000...99_999_999))"),
                ]),
                "context": .object([:]),
            ],
            events: events,
            errorMessage: nil
        )
        switch status {
        case .waiting:
            execution.waitingReason = random.pick(["wait_for_response", "timeout"])
        case .handoff:
            execution.events.append(KapsoEvent(id: random.uuid(), type: "handoff", stepIdentifier: "agent_handoff", payload: ["agent": .string("Lucía")], at: lastEvent))
        case .ended, .failed:
            execution.finish(as: status, at: min(now - now % 1000, lastEvent + random.int64(in: 0...60) * 1000), random: &random)
        case .running:
            break
        }
        return execution
    }
}
