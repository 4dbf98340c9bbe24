import ExecutionsAPI
import GatewayHTTP
public import GatewayServer

/// `/healthz`, `/readyz`, `/metrics` and `/openapi.yaml`: served without a client key.
public struct OperationalEndpoints: Sendable {
    public static let paths: Set<String> = ["/healthz", "/readyz", "/metrics", "/openapi.yaml"]

    let metrics: GatewayMetrics
    let isDraining: @Sendable () -> Bool
    /// Refreshes gauges that mirror other components' statistics just before a scrape.
    let refreshGauges: @Sendable () async -> Void
    let openAPIDocument: [UInt8]

    public init(
        metrics: GatewayMetrics,
        isDraining: @escaping @Sendable () -> Bool,
        refreshGauges: @escaping @Sendable () async -> Void,
        openAPIDocument: [UInt8]
    ) {
        self.metrics = metrics
        self.isDraining = isDraining
        self.refreshGauges = refreshGauges
        self.openAPIDocument = openAPIDocument
    }

    public func register(on router: inout Router) {
        router.get("/healthz") { _, _ in
            HTTPResponse(status: .ok, headers: ["Content-Type": "application/json", "Cache-Control": "no-store"],
                         body: Array("{\"status\":\"ok\"}".utf8))
        }
        router.get("/readyz") { [isDraining] _, context in
            if isDraining() {
                return Problem(.internalError, status: .serviceUnavailable, title: "Draining",
                               detail: "The gateway is shutting down and takes no new work.", retryAfterSeconds: 1)
                    .response(requestID: context[RequestTraceKey.self]?.requestID ?? "")
            }
            return HTTPResponse(status: .ok, headers: ["Content-Type": "application/json", "Cache-Control": "no-store"],
                                body: Array("{\"status\":\"ready\"}".utf8))
        }
        router.get("/metrics") { [metrics, refreshGauges] _, _ in
            await refreshGauges()
            return HTTPResponse(status: .ok, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8", "Cache-Control": "no-store"],
                                body: metrics.exposition())
        }
        router.get("/openapi.yaml") { [openAPIDocument] _, _ in
            HTTPResponse(status: .ok, headers: ["Content-Type": "application/yaml"], body: openAPIDocument)
        }
    }
}
