// libFuzzer entry for the provider adapters and the renderer: everything an upstream answer goes
// through between the network and the client. Built only by scripts/fuzz-provider-answers
// (GATEWAY_FUZZ=1 adds this target to the package; libFuzzer supplies `main`).
//
// The first input byte is a control byte: its low three bits pick the answer's shape (Kaizen list
// or detail, a Kapso workflow's executions or detail, Kapso's workflow list, a B3OS window or
// detail), the high bits the offset a B3OS window was read at (up to Int.max, where row offsets
// run out). The rest is the answer's body. Whatever the adapter accepts is merged into one order,
// filtered and rendered as a list page and as detail documents, and every rendering must be JSON
// again: an upstream answer may be refused as malformed, never crash or corrupt a page.

@testable import ExecutionsAPI
import GatewayJSON
@testable import GatewayProviders

private func check(_ condition: Bool, _ message: StaticString) {
    if !condition { fatalError("invariant violated: \(message)") }
}

private let b3osOffsets = [0, 90, 1_000_000, Int.max - 150, Int.max - 99, Int.max - 1, Int.max]

private enum Shape: UInt8, CaseIterable {
    case kaizenList, kaizenDetail, kapsoWorkflowPage, kapsoDetail, kapsoWorkflows, b3osWindow, b3osDetail
}

/// The executions and detail records an answer decodes to; nil when the adapter refuses it.
private func decode(_ json: JSONValue, shape: Shape, b3osOffset: Int) -> ([UnifiedExecution], [ExecutionDetail])? {
    do throws(ProviderError) {
        switch shape {
        case .kaizenList:
            return (try KaizenProvider.listAnswer(json, skipped: .discarding(provider: "kaizen")), [])
        case .kaizenDetail:
            let detail = try KaizenProvider.detail(json, provider: "kaizen")
            return ([detail.execution], [detail])
        case .kapsoWorkflowPage:
            let page = try KapsoProvider.workflowPage(json, listedUnderStatus: "running", skipped: .discarding(provider: "kapso"))
            return (page.executions, [])
        case .kapsoDetail:
            let detail = try KapsoProvider.detail(json, provider: "kapso")
            return ([detail.execution], [detail])
        case .kapsoWorkflows:
            let page = try KapsoProvider.workflowListPage(json)
            check(page.totalPages >= 1, "a workflow list announces at least one page")
            return ([], [])
        case .b3osWindow:
            let window = try B3OSProvider.window(json, offset: b3osOffset, skipped: .discarding(provider: "b3os"))
            check(window.executions.count <= window.rowCount, "a window holds at most its rows")
            for execution in window.executions {
                if let offset = execution.sourceOffset {
                    check(offset >= b3osOffset && offset - b3osOffset < window.rowCount, "a row's offset lies inside its window")
                    _ = ExecutionsService.offsetAfter(offset)
                }
            }
            return (window.executions, [])
        case .b3osDetail:
            let detail = try B3OSProvider.detail(json, provider: "b3os")
            return ([detail.execution], [detail])
        }
    } catch {
        _ = error.description
        _ = ExecutionsService.problem(for: error, provider: "fuzz")
        return nil
    }
}

private func checkIsJSON(_ bytes: [UInt8], _ message: StaticString) {
    do throws(JSONParseError) {
        _ = try JSONParser.parse(bytes)
    } catch {
        fatalError("invariant violated: \(message) (\(error.reason) at byte \(error.offset))")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func providerAnswersFuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let input = UnsafeBufferPointer(start: data, count: size)
    let control = input[0]
    let shape = Shape.allCases[Int(control & 0x07) % Shape.allCases.count]
    let b3osOffset = b3osOffsets[Int(control >> 3) % b3osOffsets.count]
    let json: JSONValue
    do throws(JSONParseError) {
        json = try JSONParser.parse(Array(input[1...]))
    } catch {
        return 0
    }
    guard let (executions, details) = decode(json, shape: shape, b3osOffset: b3osOffset) else { return 0 }

    for execution in executions {
        check(Timestamp(rfc3339: execution.createdAt.rfc3339) == execution.createdAt, "an instant renders and parses back to itself")
        if let duration = execution.durationMs { check(duration >= 0, "a duration is never negative") }
        if let attempts = execution.attempts { check(attempts >= 0, "attempts are never negative") }
    }
    let ordered = executions.sorted { $0.sortKey.precedes($1.sortKey) }
    var filter = ExecutionFilter()
    filter.searchTerms = ["a", "0"]
    filter.createdBefore = ordered.first?.createdAt
    _ = filter.effectiveBoundary(after: ordered.last.map { ProviderPosition(last: $0.sortKey, offsetHint: $0.sourceOffset) })
    _ = ordered.filter(filter.matches)

    var items = ordered.map { ExecutionsService.JoinedExecution(execution: $0, detail: nil, error: nil, cache: .miss) }
    for detail in details {
        items.append(.init(execution: detail.execution, detail: detail, error: nil, cache: detail.cache))
        checkIsJSON(Renderer.detailDocument(detail, joinable: Set(JoinableField.allCases)).body, "a detail document is JSON")
    }
    let include = Set(IncludeField.allCases)
    if let page = Renderer.listDocument(
        items: items, include: include, limit: 100, nextCursor: "next", complete: true, providers: [], requestID: "fuzz"
    ) {
        checkIsJSON(page.body, "a list page is JSON")
        check(page.entityTaggedCount <= page.body.count, "the ETag covers a prefix of the page")
    }
    // A cap below the page's size refuses it, never truncates it.
    check(
        Renderer.listDocument(items: items, include: include, limit: 100, nextCursor: nil, complete: true, providers: [], requestID: "fuzz", maxBytes: 16) == nil,
        "a page larger than the cap is refused"
    )
    return 0
}
