public import Logging
public import ServiceLifecycle
import Configuration
import Metrics
import Synchronization


/// The configuration file, watched for changes: swift-configuration's `ReloadingFileProvider` re-checks it
/// every `pollInterval` and whenever the process gets SIGHUP, and this service hands every changed version to
/// `onReload`. Run it in the app's `ServiceGroup`.
///
/// What a running gateway can apply is its business; `GatewayConfiguration.sectionsRequiringRestart` tells it
/// which changed sections (everything except `clients` and `rateLimit`) it has to ignore until a restart.
/// A file that no longer validates is `.rejected` with every problem, and `current` stays as it was.
public final class ReloadingGatewayConfiguration: Service, Sendable {
    public enum Reload: Sendable, Equatable {
        /// The file changed and is valid; `current` is now the new configuration.
        case applied(GatewayConfiguration, previous: GatewayConfiguration)
        /// The file changed but has problems; `current` is unchanged.
        case rejected(ConfigurationErrors)
    }

    public let path: String
    private let provider: ReloadingFileProvider<GatewayConfigurationSnapshot>
    private let onReload: @Sendable (Reload) async -> Void
    private let state: Mutex<State>

    private struct State {
        var current: GatewayConfiguration
        /// The last snapshot handed out, to tell a new file version from a watcher's initial value.
        var lastSnapshot: GatewayConfigurationSnapshot
    }

    /// Loads and validates `path` (throwing every problem when it is invalid or unreadable).
    public init(
        path: String,
        environment: [String: String] = ConfigLoader.processEnvironment,
        pollInterval: Duration = .seconds(15),
        logger: Logger = Logger(label: "gateway.config"),
        onReload: @escaping @Sendable (Reload) async -> Void
    ) async throws(ConfigurationErrors) {
        self.path = path
        self.onReload = onReload
        let provider: ReloadingFileProvider<GatewayConfigurationSnapshot>
        do {
            provider = try await ReloadingFileProvider(
                parsingOptions: .init(fileName: path, environment: environment),
                filePath: .init(path),
                pollInterval: pollInterval,
                logger: logger,
                // Its metric labels embed the generic type name, which is no valid Prometheus name, and the
                // gateway's metrics are all prefixed `gateway_`; the app counts reloads through `onReload`.
                metrics: NOOPMetricsHandler.instance
            )
        } catch {
            let message: String
            do throws(ConfigLoader.FileReadError) {
                _ = try ConfigLoader.readFile(atPath: path)
                message = "cannot read the configuration file: \(error)"
            } catch {
                message = error.message
            }
            throw ConfigurationErrors(problems: [ConfigProblem(file: path, key: "", line: nil, message: message)])
        }
        guard let snapshot = provider.snapshot() as? GatewayConfigurationSnapshot else {
            throw ConfigurationErrors(problems: [
                ConfigProblem(file: path, key: "", line: nil, message: "cannot read the configuration file")
            ])
        }
        switch snapshot.result {
        case .success(let configuration):
            self.provider = provider
            self.state = Mutex(State(current: configuration, lastSnapshot: snapshot))
        case .failure(let errors):
            throw errors
        }
    }

    /// The latest valid configuration.
    public var current: GatewayConfiguration {
        state.withLock { $0.current }
    }

    /// Watches the file until cancelled or until graceful shutdown.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.provider.run() }
            group.addTask { try await self.deliverReloads() }
            // The provider stops on graceful shutdown; the delivery loop only on cancellation.
            _ = try await group.next()
            group.cancelAll()
        }
    }

    /// Checks the file now, as SIGHUP does; a change reaches `onReload` through `run()`.
    public func checkNow() async {
        // `fetchValue` is swift-configuration's "consult the source now"; for a file provider it reloads.
        _ = try? await provider.fetchValue(forKey: AbsoluteConfigKey(["server", "port"]), type: .int)
    }

    private func deliverReloads() async throws {
        try await provider.watchSnapshot { updates in
            for try await snapshot in updates {
                guard let snapshot = snapshot as? GatewayConfigurationSnapshot, let reload = accept(snapshot) else {
                    continue
                }
                await onReload(reload)
            }
        }
    }

    private func accept(_ snapshot: GatewayConfigurationSnapshot) -> Reload? {
        state.withLock { state in
            guard snapshot !== state.lastSnapshot else { return nil }
            state.lastSnapshot = snapshot
            switch snapshot.result {
            case .success(let configuration):
                // A touched but unchanged file is no reload.
                guard configuration != state.current else { return nil }
                let previous = state.current
                state.current = configuration
                return .applied(configuration, previous: previous)
            case .failure(let errors):
                return .rejected(errors)
            }
        }
    }
}
