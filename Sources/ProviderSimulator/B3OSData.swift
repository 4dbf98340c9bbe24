// B3OS's world: paid and free workflow executions with every documented field.
//
// The document lists each field's type but not its nullability. The simulator sends null where
// a value cannot exist yet or does not apply: `startedAt` before the run starts (awaiting_payment,
// payment_confirmed, workflow_queued), `finishedAt` until a terminal status, `runId` before the
// run is queued, `responsePayload` unless the run produced output, checkout/order/payment fields
// for workflows that need no payment, and the optional references (externalRef, idempotencyKey,
// sourceEntityId/Type, statusReason). The detail's `events` shape is not documented; the simulator
// uses `{id, executionId, type, message, data, createdAt}`.

import GatewayEventLoop
import GatewayJSON

enum B3OSStatus: String, SimulatedStatus {
    case awaitingPayment = "awaiting_payment"
    case paymentConfirmed = "payment_confirmed"
    case workflowQueued = "workflow_queued"
    case workflowRunning = "workflow_running"
    case workflowWaiting = "workflow_waiting"
    case workflowSucceeded = "workflow_succeeded"
    case workflowFailed = "workflow_failed"
    case workflowCancelled = "workflow_cancelled"

    var isFinished: Bool { self == .workflowSucceeded || self == .workflowFailed || self == .workflowCancelled }
    var hasStarted: Bool { ![.awaitingPayment, .paymentConfirmed, .workflowQueued].contains(self) }
}

struct B3OSEvent: Sendable {
    let id: String
    let type: String
    let message: String
    let data: JSONObject
    let at: Int64
}

struct B3OSExecution: SimulatedExecution {
    let id: String
    let organizationID: String
    let workflowID: String
    var status: B3OSStatus
    let createdAt: Int64
    var updatedAt: Int64
    var startedAt: Int64?
    var finishedAt: Int64?
    let checkoutSessionID: String?
    let clientSafeMetadata: JSONObject
    let externalRef: String?
    let idempotencyKey: String?
    let initiatedByID: String
    let initiatedByType: String
    let orderID: String?
    var paymentStatus: String?
    let requestPayload: JSONObject
    var responsePayload: JSONObject?
    var runID: String?
    let sourceEntityID: String?
    var sourceEntityType: String?
    let sourceSystem: String
    var statusReason: String?
    var events: [B3OSEvent]
    var fieldOverrides: JSONObject = [:]

    private static func time(_ milliseconds: Int64?) -> JSONValue {
        milliseconds.map { .string(Timestamps.format(milliseconds: $0, style: .trimmedFraction)) } ?? .null
    }

    var item: JSONValue { generatedItem.overriding(fieldOverrides) }

    private var generatedItem: JSONValue {
        .object([
            "checkoutSessionId": .optional(checkoutSessionID),
            "clientSafeMetadata": .object(clientSafeMetadata),
            "createdAt": B3OSExecution.time(createdAt),
            "externalRef": .optional(externalRef),
            "finishedAt": B3OSExecution.time(finishedAt),
            "id": .string(id),
            "idempotencyKey": .optional(idempotencyKey),
            "initiatedById": .string(initiatedByID),
            "initiatedByType": .string(initiatedByType),
            "orderId": .optional(orderID),
            "organizationId": .string(organizationID),
            "paymentStatus": .optional(paymentStatus),
            "requestPayload": .object(requestPayload),
            "responsePayload": responsePayload.map(JSONValue.object) ?? .null,
            "runId": .optional(runID),
            "sourceEntityId": .optional(sourceEntityID),
            "sourceEntityType": .optional(sourceEntityType),
            "sourceSystem": .string(sourceSystem),
            "startedAt": B3OSExecution.time(startedAt),
            "status": .string(status.rawValue),
            "statusReason": .optional(statusReason),
            "updatedAt": B3OSExecution.time(updatedAt),
            "workflowId": .string(workflowID),
        ])
    }

    var eventsJSON: JSONValue {
        .array(events.map { event in
            .object([
                "id": .string(event.id),
                "executionId": .string(id),
                "type": .string(event.type),
                "message": .string(event.message),
                "data": .object(event.data),
                "createdAt": B3OSExecution.time(event.at),
            ])
        })
    }

    var sortKey: ListOrderKey { ListOrderKey(milliseconds: createdAt, id: id) }

    mutating func advance(to newStatus: B3OSStatus, at time: Int64, random: inout SplitMix64) {
        let time = max(time, updatedAt)
        if newStatus.hasStarted, startedAt == nil {
            startedAt = time
            events.append(B3OSEvent(id: "evt_" + random.token(20), type: "workflow.started", message: "Workflow run started", data: [:], at: time))
        }
        if newStatus != .awaitingPayment, runID == nil, newStatus != .paymentConfirmed {
            runID = "run_" + random.token(22)
        }
        if paymentStatus == "pending", newStatus != .awaitingPayment { paymentStatus = "paid" }
        status = newStatus
        updatedAt = time
        switch newStatus {
        case .workflowSucceeded:
            finishedAt = time
            statusReason = nil
            responsePayload = [
                "txHash": .string("0x" + random.token(64, alphabet: "0123456789abcdef")),
                "result": .string(random.pick(["ok", "delivered", "réglé"])),
            ]
            events.append(B3OSEvent(id: "evt_" + random.token(20), type: "workflow.succeeded", message: "Workflow finished successfully", data: [:], at: time))
        case .workflowFailed:
            finishedAt = time
            statusReason = random.pick(["step 'transfer' reverted: insufficient funds", "RPC endpoint timed out after 30s", "webhook target answered 500"])
            responsePayload = random.chance(0.5) ? nil : ["partial": .bool(true)]
            events.append(B3OSEvent(id: "evt_" + random.token(20), type: "workflow.failed", message: statusReason ?? "failed", data: [:], at: time))
        case .workflowCancelled:
            finishedAt = time
            statusReason = random.chance(0.3) ? nil : "cancelled by user"
            events.append(B3OSEvent(id: "evt_" + random.token(20), type: "workflow.cancelled", message: "Workflow run cancelled", data: [:], at: time))
        case .workflowWaiting:
            statusReason = random.chance(0.5) ? "waiting for approval" : nil
        default:
            break
        }
    }
}

struct B3OSOrganizationData: SimulatedOrganizationData {
    let organization: SimulatedOrganization
    let workflowIDs: [String]
    var executions: [B3OSExecution]
}

struct B3OSStore: SimulatedStore {
    var organizations: [B3OSOrganizationData]
    var random: SplitMix64

    init(configuration: SimulatorConfiguration, now: Int64) {
        random = SplitMix64(seed: configuration.seed, labels: "b3os", "inserts")
        organizations = ProviderSimulator.organizations(of: .b3os).map { organization in
            var random = SplitMix64(seed: configuration.seed, labels: "b3os", organization.id)
            let workflowIDs = (0..<max(1, configuration.workflowsPerOrganization)).map { _ in random.uuid() }
            var data = B3OSOrganizationData(organization: organization, workflowIDs: workflowIDs, executions: [])
            let schedule = generatedSchedule(
                of: .b3os, configuration: configuration, newest: now, granularityMilliseconds: 1, random: &random
            ) { (status: B3OSStatus) in
                switch status {
                case .workflowSucceeded: 10
                case .workflowFailed: 3
                case .workflowRunning: 2
                case .workflowCancelled, .workflowWaiting, .workflowQueued, .awaitingPayment, .paymentConfirmed: 1
                }
            }
            for (createdAt, status) in schedule {
                data.executions.append(B3OSStore.makeExecution(
                    organizationID: organization.id, workflowID: random.pick(workflowIDs), status: status,
                    createdAt: createdAt, now: now, random: &random
                ))
            }
            return data
        }
    }

    static func makeExecution(
        organizationID: String, workflowID: String, status: B3OSStatus, createdAt: Int64, now: Int64, random: inout SplitMix64
    ) -> B3OSExecution {
        let needsPayment = status == .awaitingPayment || status == .paymentConfirmed || random.chance(0.3)
        let recipients = ["0x8ba1f109551bD432803012645Ac136ddd64DBA72", "vitalik.eth", "Zoë’s wallet", "金庫-01"]
        var payload: JSONObject = [
            "recipient": .string(random.pick(recipients)),
            "amount": .string(String(random.int(in: 1...50_000)) + "." + String(random.int(in: 10...99))),
            "asset": .string(random.pick(["USDC", "ETH", "B3"])),
        ]
        if random.chance(0.4) { payload["memo"] = .string(random.pick(["Rechnung 2025-118", "payout week 47", "フリーランス報酬"])) }
        if random.chance(0.2) { payload["chainId"] = .int(random.pick([1, 8453, 8333])) }
        var execution = B3OSExecution(
            id: "exec_" + random.token(26, alphabet: "0123456789ABCDEFGHJKMNPQRSTVWXYZ"),
            organizationID: organizationID,
            workflowID: workflowID,
            status: status == .awaitingPayment ? .awaitingPayment : .workflowQueued,
            createdAt: createdAt,
            updatedAt: createdAt,
            startedAt: nil,
            finishedAt: nil,
            checkoutSessionID: needsPayment ? "cs_" + random.token(24) : nil,
            clientSafeMetadata: random.chance(0.5) ? [:] : ["label": .string(random.pick(["Payroll", "Treasury sweep", "Refund"])), "uiVersion": .int(3)],
            externalRef: random.chance(0.4) ? "ext-" + random.token(10) : nil,
            idempotencyKey: random.chance(0.6) ? random.uuid() : nil,
            initiatedByID: random.chance(0.5) ? "usr_" + random.token(16) : "key_" + random.token(16),
            initiatedByType: random.pick(["user", "api_key", "schedule", "webhook"]),
            orderID: needsPayment ? "ord_" + random.token(18) : nil,
            paymentStatus: needsPayment ? "pending" : nil,
            requestPayload: payload,
            responsePayload: nil,
            runID: nil,
            sourceEntityID: random.chance(0.5) ? random.uuid() : nil,
            sourceEntityType: nil,
            sourceSystem: random.pick(["api", "dashboard", "scheduler", "webhook"]),
            statusReason: nil,
            events: [B3OSEvent(id: "evt_" + random.token(20), type: "execution.created", message: "Execution created", data: [:], at: createdAt)]
        )
        if execution.sourceEntityID != nil {
            execution.sourceEntityType = random.pick(["invoice", "subscription", "agent"])
        }
        // Walk the execution to its status along realistic steps.
        var time = createdAt
        func step(_ status: B3OSStatus) {
            time = min(now, time + random.int64(in: 50...120_000))
            execution.advance(to: status, at: time, random: &random)
        }
        if status == .awaitingPayment { return execution }
        if needsPayment {
            execution.status = .awaitingPayment
            step(.paymentConfirmed)
            if status == .paymentConfirmed { return execution }
            step(.workflowQueued)
        } else {
            execution.runID = "run_" + random.token(22)
        }
        if status == .workflowQueued { return execution }
        if status == .workflowCancelled && random.chance(0.5) {
            step(.workflowCancelled)
            return execution
        }
        step(.workflowRunning)
        if status == .workflowRunning { return execution }
        if status == .workflowWaiting || random.chance(0.2) { step(.workflowWaiting) }
        if status == .workflowWaiting { return execution }
        step(status)
        return execution
    }
}
