// Kaizen's world: workflows with tags, logins, batches and executions in the five statuses of
// `POST /executions/list`, rendered exactly in the per-status shapes of its OpenAPI document and
// the detail shape of `POST /executions/get`.

import Foundation
import GatewayEventLoop
import GatewayJSON

enum KaizenStatus: String, SimulatedStatus {
    case inProgress = "InProgress"
    case paused = "Paused"
    case enqueued = "Enqueued"
    case completed = "Completed"
    case failed = "Failed"

    var isFinished: Bool { self == .completed || self == .failed }
}

struct KaizenWorkflow: Sendable {
    let id: String
    let name: String
    let tagIDs: [String]
}

struct KaizenLogin: Sendable {
    let id: String
    let name: String
    let isManual: Bool
}

struct KaizenBatch: Sendable {
    let id: String
    let name: String
}

struct KaizenFile: Sendable {
    let id: String
    let name: String
    let mimeType: String
    let sizeBytes: Int
    let key: String
}

/// Whether and how `parentExecutionId` appears in a list item: the schema declares it but does
/// not require it, so some items omit it, some send null, children send the parent's id.
enum KaizenParentLink: Sendable {
    case omitted
    case none
    case parent(String)

    var id: String? {
        if case .parent(let id) = self { return id }
        return nil
    }
}

struct KaizenExecution: SimulatedExecution {
    let id: String
    let organizationID: String
    let workflow: KaizenWorkflow
    let batch: KaizenBatch?
    let logins: [KaizenLogin]
    var status: KaizenStatus
    let startTime: Int64
    var endTime: Int64?
    let params: JSONObject
    let metadata: JSONObject
    let name: String?
    let parentLink: KaizenParentLink
    let attempts: Int
    let totalAttempts: Int
    let isTest: Bool
    var response: JSONObject?
    var errorCode: String?
    var errorAnalysis: String?
    let sessionSuffix: String
    var fieldOverrides: JSONObject = [:]
    let vendorSessionID: String?
    let agentThreadID: String?
    var files: [KaizenFile]
    let startBlockName: String?
    let manualLogin: Bool

    var sessionID: String? { status == .enqueued ? nil : "sess_" + sessionSuffix }
    var browserSessionID: String? { status == .enqueued ? nil : "bs_" + sessionSuffix }

    var sortKey: ListOrderKey { ListOrderKey(milliseconds: startTime, id: id) }

    var liveViewURL: String? {
        status == .inProgress ? "https://live.kaizenautomation.com/sessions/bs_\(sessionSuffix)?token=lv_\(sessionSuffix.prefix(8))" : nil
    }

    // MARK: Rendering

    var listItem: JSONValue { generatedListItem.overriding(fieldOverrides) }

    var detail: JSONValue { generatedDetail.overriding(fieldOverrides) }

    private var generatedListItem: JSONValue {
        var object = commonFields(includeAuthenticationStatus: true)
        if !status.isFinished { object["status"] = .string(status.rawValue) }
        object["params"] = .object(params)
        object["metadata"] = .object(metadata)
        object["name"] = .optional(name)
        switch parentLink {
        case .omitted: break
        case .none: object["parentExecutionId"] = .null
        case .parent(let id): object["parentExecutionId"] = .string(id)
        }
        object["attempts"] = .int(attempts)
        object["totalAttempts"] = .int(totalAttempts)
        object["isLastAttempt"] = .bool(attempts >= totalAttempts)
        object["isTest"] = .bool(isTest)
        if status.isFinished {
            addFinishedFields(to: &object)
            object["truncatedParams"] = .optional(KaizenExecution.truncatedJSON(params))
            object["truncatedResponse"] = .optional(response.flatMap(KaizenExecution.truncatedJSON))
            object["error"] = errorValue
            object["status"] = .string(status.rawValue)
        } else {
            object["truncatedParams"] = .optional(KaizenExecution.truncatedJSON(params))
        }
        return .object(object)
    }

    private var generatedDetail: JSONValue {
        var object = commonFields(includeAuthenticationStatus: false)
        object["params"] = .object(params)
        object["metadata"] = .object(metadata)
        object["name"] = .optional(name)
        object["startBlock"] = startBlock
        let contextAuthentications = object["contextAuthentications"]
        object["contextAuthentications"] = nil
        object["contextAuthentications"] = contextAuthentications
        object["sessionId"] = .optional(sessionID)
        object["agentConversationThreadId"] = .optional(agentThreadID)
        object["attempts"] = .int(attempts)
        object["totalAttempts"] = .int(totalAttempts)
        object["isLastAttempt"] = .bool(attempts >= totalAttempts)
        object["isTest"] = .bool(isTest)
        object["status"] = .string(status.rawValue)
        object["liveViewUrl"] = .optional(liveViewURL)
        object["browserSessionId"] = .optional(browserSessionID)
        object["browserSessionVendorId"] = .optional(status == .enqueued ? nil : vendorSessionID)
        object["downloads"] = downloads
        object["parentExecutionId"] = .optional(parentLink.id)
        if status.isFinished {
            addFinishedFields(to: &object)
            object["error"] = errorValue
        }
        return .object(object)
    }

    private func commonFields(includeAuthenticationStatus: Bool) -> JSONObject {
        var object: JSONObject = [
            "id": .string(id),
            "workflow": .object(["id": .string(workflow.id), "name": .string(workflow.name)]),
            "batch": batch.map { .object(["id": .string($0.id), "name": .string($0.name)]) } ?? .null,
            "logins": .array(logins.map { .object(["id": .string($0.id), "name": .string($0.name)]) }),
            "authentications": .array(authentications),
        ]
        object["contextAuthentications"] = .array(logins.enumerated().map { index, login in
            var entry: JSONObject = [
                "contextAuthenticationId": .string("ctxauth_\(sessionSuffix.prefix(10))_\(index)"),
                "loginSummary": .object([
                    "loginId": .string(login.id), "name": .string(login.name), "isManual": .bool(login.isManual),
                ]),
            ]
            if includeAuthenticationStatus { entry["authenticationStatus"] = .string(contextAuthenticationStatus) }
            return .object(entry)
        })
        object["startTime"] = .string(Timestamps.format(milliseconds: startTime, style: .milliseconds))
        return object
    }

    private var authentications: [JSONValue] {
        logins.map { _ in
            switch status {
            case .enqueued:
                return .object(["status": .string("Enqueued")])
            case .inProgress, .paused:
                return .object([
                    "browserSessionId": .string("bs_" + sessionSuffix),
                    "status": .string("InProgress"),
                    "liveViewUrl": .optional(liveViewURL),
                ])
            case .completed:
                return .object(["browserSessionId": .string("bs_" + sessionSuffix), "status": .string("Completed")])
            case .failed:
                return .object([
                    "browserSessionId": .string("bs_" + sessionSuffix),
                    "status": .string(errorCode == "LOGIN_FAILED" ? "Failed" : "Completed"),
                ])
            }
        }
    }

    private var contextAuthenticationStatus: String {
        switch status {
        case .enqueued: "Unauthenticated"
        case .inProgress, .paused: manualLogin ? "AuthenticationInProgress" : "Authenticated"
        case .completed: "Authenticated"
        case .failed: errorCode == "LOGIN_FAILED" ? "Unauthenticated" : "Authenticated"
        }
    }

    private func addFinishedFields(to object: inout JSONObject) {
        let end = endTime ?? startTime
        object["durationMs"] = .integer(end - startTime)
        object["endTime"] = .string(Timestamps.format(milliseconds: end, style: .milliseconds))
        object["response"] = response.map(JSONValue.object) ?? .null
    }

    private var errorValue: JSONValue {
        guard status == .failed else { return .null }
        return .object(["code": .optional(errorCode), "analysis": .optional(errorAnalysis)])
    }

    private var startBlock: JSONValue {
        guard let startBlockName else { return .null }
        let login = logins.first
        return .object([
            "id": .string("blk_\(sessionSuffix.prefix(12))"),
            "name": .string(startBlockName),
            "blockReferenceId": .string("ref_\(workflow.id.dropFirst(3))_start"),
            "type": .string(login == nil ? "Navigate" : "Login"),
            "isCacheable": .bool(login != nil),
            "skipIfNotPresent": .bool(false),
            "useWorkflowRecoveryAgent": .bool(!isTest),
            "data": .object([
                "loginId": .optional(login?.id),
                "isParameter": .bool(false),
                "forceLoginEveryTime": .bool(manualLogin),
            ]),
            "parentRelationship": .object([
                "blockDepth": .int(0),
                "positionInSequence": .int(0),
                "parentBlockId": .null,
            ]),
            "locator": .object([
                "role": .optional(login == nil ? nil : "button"),
                "text": .optional(login == nil ? nil : "Sign in"),
                "label": .null,
                "placeholder": .null,
                "altText": .null,
                "title": .null,
                "css": .optional(login == nil ? nil : "form#login button[type=submit]"),
                "xpath": .null,
            ]),
        ])
    }

    private var downloads: JSONValue {
        let message: String?
        switch (status, files.count) {
        case (.enqueued, _): message = "Execution has not started"
        case (_, 0): message = status.isFinished ? "No files were downloaded" : nil
        case (_, let count): message = count == 1 ? "1 file downloaded" : "\(count) files downloaded"
        }
        return .object([
            "files": .array(files.map { file in
                .object([
                    "id": .string(file.id),
                    "name": .string(file.name),
                    "mimeType": .string(file.mimeType),
                    "sizeBytes": .int(file.sizeBytes),
                    "downloadUrl": .string("https://files.kaizenautomation.com/\(file.key)?sig=\(file.id.suffix(8))"),
                    "key": .string(file.key),
                ])
            }),
            "message": .optional(message),
        ])
    }

    /// The JSON of `object` cut to about 50 characters, as Kaizen's `truncatedParams` shows it.
    static func truncatedJSON(_ object: JSONObject) -> String? {
        guard !object.isEmpty else { return nil }
        let text = String(decoding: JSONValue.object(object).serialized(), as: UTF8.self)
        guard text.count > 50 else { return text }
        return String(text.prefix(50)) + "..."
    }
}

struct KaizenOrganizationData: SimulatedOrganizationData {
    let organization: SimulatedOrganization
    let workflows: [KaizenWorkflow]
    let logins: [KaizenLogin]
    let batches: [KaizenBatch]
    var executions: [KaizenExecution]
}

/// Every Kaizen organisation's data plus the generator that makes new executions.
struct KaizenStore: SimulatedStore {
    var organizations: [KaizenOrganizationData]
    var random: SplitMix64

    init(configuration: SimulatorConfiguration, now: Int64) {
        random = SplitMix64(seed: configuration.seed, labels: "kaizen", "inserts")
        organizations = ProviderSimulator.organizations(of: .kaizen).map { organization in
            var random = SplitMix64(seed: configuration.seed, labels: "kaizen", organization.id)
            let workflows = KaizenStore.makeWorkflows(count: configuration.workflowsPerOrganization, random: &random)
            let logins = KaizenStore.makeLogins(random: &random)
            let batches = (0..<3).map { index in
                KaizenBatch(id: "batch_" + random.token(12), name: ["Month-end close", "Nachlauf Oktober", "Backfill 2024 ✔︎"][index])
            }
            var data = KaizenOrganizationData(organization: organization, workflows: workflows, logins: logins, batches: batches, executions: [])
            let schedule = generatedSchedule(
                of: .kaizen, configuration: configuration, newest: now, granularityMilliseconds: 1, random: &random
            ) { (status: KaizenStatus) in
                switch status {
                case .completed: 10
                case .failed: 3
                case .inProgress: 2
                case .paused, .enqueued: 1
                }
            }
            for (startTime, status) in schedule {
                let execution = KaizenStore.makeExecution(in: data, status: status, startTime: startTime, now: now, random: &random)
                data.executions.append(execution)
            }
            return data
        }
    }

    static func makeWorkflows(count: Int, random: inout SplitMix64) -> [KaizenWorkflow] {
        let names = [
            "Invoice sync", "Rechnungsabgleich – Q4 🧾", "顧客オンボーディング", "Carrier portal scrape",
            "Payroll export (ADP)", "Café ☕ supplier reconciliation", "Tax filing — Zürich", "Benefits enrolment",
        ]
        let tags = ["tag_finance", "tag_ops", "tag_nightly", "tag_eu"]
        return (0..<max(1, count)).map { index in
            let tagIDs = tags.enumerated().filter { offset, _ in (index + offset) % 3 != 0 || offset == 0 }.map(\.element)
            return KaizenWorkflow(id: "wf_" + random.token(16), name: names[index % names.count] + (index >= names.count ? " #\(index)" : ""), tagIDs: tagIDs)
        }
    }

    static func makeLogins(random: inout SplitMix64) -> [KaizenLogin] {
        [
            KaizenLogin(id: "login_" + random.token(12), name: "SAP Concur (finance@acme)", isManual: false),
            KaizenLogin(id: "login_" + random.token(12), name: "DATEV Unternehmen online", isManual: true),
            KaizenLogin(id: "login_" + random.token(12), name: "FedEx Billing Online", isManual: false),
        ]
    }

    static func makeExecution(
        in data: KaizenOrganizationData, status: KaizenStatus, startTime: Int64, now: Int64, random: inout SplitMix64
    ) -> KaizenExecution {
        let workflowIndex = random.int(in: 0...(data.workflows.count - 1))
        let workflow = data.workflows[workflowIndex]
        let logins: [KaizenLogin] = random.chance(0.2) ? [] : Array(data.logins.shuffled(using: &random).prefix(random.int(in: 1...2)))
        let customers = ["Müller GmbH", "Acme Corp", "株式会社サンプル", "Zoë & Co", "O'Brien Logistics", "Société Générale"]
        var params: JSONObject = [:]
        if !random.chance(0.1) {
            params["invoiceNumber"] = .string("INV-2025-\(random.int(in: 10000...99999))")
            params["customer"] = .string(random.pick(customers))
            if random.chance(0.6) { params["amount"] = .double(Double(random.int(in: 100...999_999)) / 100) }
            if random.chance(0.4) { params["region"] = .string(random.pick(["eu-west", "us-east", "ap-northeast"])) }
            if random.chance(0.3) { params["dryRun"] = .bool(random.chance(0.5)) }
            if random.chance(0.2) { params["options"] = .object(["retries": .int(random.int(in: 0...3)), "note": .string("Rückruf bis Freitag")]) }
        }
        var metadata: JSONObject = [:]
        if random.chance(0.5) { metadata["triggeredBy"] = .string(random.pick(["schedule", "api", "ui"])) }
        if random.chance(0.3) { metadata["traceId"] = .string(random.token(16, alphabet: "0123456789abcdef")) }
        let totalAttempts = random.int(in: 1...3)
        let attempts = status == .enqueued ? random.int(in: 0...1) : random.int(in: 1...totalAttempts)
        let parentLink: KaizenParentLink
        if random.chance(0.12), let parent = data.executions.last {
            parentLink = .parent(parent.id)
        } else {
            parentLink = random.chance(0.5) ? .omitted : .none
        }
        var execution = KaizenExecution(
            id: "ex_" + random.token(20),
            organizationID: data.organization.id,
            workflow: workflow,
            batch: random.chance(0.35) ? random.pick(data.batches) : nil,
            logins: logins,
            status: status,
            startTime: startTime,
            endTime: nil,
            params: params,
            metadata: metadata,
            name: random.chance(0.3) ? nil : random.pick(["nightly run", "Nachtlauf", "manual retry", "月次処理", "backfill ⏪"]),
            parentLink: parentLink,
            attempts: attempts,
            totalAttempts: totalAttempts,
            isTest: random.chance(0.15),
            response: nil,
            errorCode: nil,
            errorAnalysis: nil,
            sessionSuffix: random.token(24),
            vendorSessionID: random.chance(0.7) ? "bb_" + random.token(18) : nil,
            agentThreadID: random.chance(0.4) ? "thread_" + random.token(16) : nil,
            files: [],
            startBlockName: status == .enqueued || random.chance(0.1) ? nil : (logins.isEmpty ? "Open portal" : "Log in to \(logins[0].name)"),
            manualLogin: logins.contains { $0.isManual }
        )
        if status == .inProgress || status == .paused, random.chance(0.4) {
            execution.files = KaizenStore.makeFiles(count: 1, random: &random)
        }
        if status.isFinished {
            execution.finish(as: status, at: min(now, startTime + Int64(random.int(in: 800...900_000))), random: &random)
        }
        return execution
    }

    static func makeFiles(count: Int, random: inout SplitMix64) -> [KaizenFile] {
        let kinds: [(String, String)] = [
            ("invoice-%@.pdf", "application/pdf"), ("Kontoauszug_%@.csv", "text/csv"),
            ("請求書_%@.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), ("screenshot-%@.png", "image/png"),
        ]
        return (0..<count).map { _ in
            let (pattern, mimeType) = random.pick(kinds)
            let stem = random.token(6)
            let id = "file_" + random.token(16)
            let name = pattern.replacingOccurrences(of: "%@", with: stem)
            return KaizenFile(id: id, name: name, mimeType: mimeType, sizeBytes: random.int(in: 512...4_000_000), key: "downloads/\(id)/\(name)")
        }
    }
}

extension KaizenExecution {
    /// Moves the execution to a finished status with the fields Kaizen shows for one.
    mutating func finish(as outcome: KaizenStatus, at end: Int64, random: inout SplitMix64) {
        status = outcome
        endTime = max(end, startTime)
        if outcome == .completed {
            response = random.chance(0.2) ? nil : [
                "rowsSynced": .int(random.int(in: 0...500)),
                "documentIds": .array((0..<random.int(in: 1...3)).map { _ in .string("doc_" + random.token(8)) }),
                "summary": .string(random.pick(["All invoices matched", "Alle Belege übertragen", "完了しました"])),
            ]
            files = KaizenStore.makeFiles(count: random.int(in: 0...4), random: &random)
            errorCode = nil
            errorAnalysis = nil
        } else {
            response = random.chance(0.7) ? nil : ["partial": .bool(true), "rowsSynced": .int(random.int(in: 0...20))]
            let failure = random.pick([
                ("LOGIN_FAILED", "The portal rejected the stored credentials; the password may have expired."),
                ("ELEMENT_NOT_FOUND", "The 'Export' button was not found; the page layout appears to have changed."),
                ("TIMEOUT", "The download did not finish within 120 s."),
            ])
            errorCode = random.chance(0.15) ? nil : failure.0
            errorAnalysis = random.chance(0.25) ? nil : failure.1
            if random.chance(0.3) { files = KaizenStore.makeFiles(count: 1, random: &random) }
        }
    }
}
