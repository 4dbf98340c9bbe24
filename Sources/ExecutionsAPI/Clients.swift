public import GatewayProviders
public import GatewayServer
import GatewayCrypto

/// An upstream credential and its non-secret identity (SHA-256), computed once at start-up.
public struct UpstreamCredential: Sendable, Equatable {
    public let secret: String
    public let identity: String

    public init(secret: String) {
        self.secret = secret
        self.identity = SHA256.hexDigest(of: secret)
    }
}

/// The authenticated caller of the API, set on the request context by the auth middleware.
public struct GatewayClient: Sendable, Equatable {
    public var id: String
    /// Provider names this client may use; nil: all.
    public var allowedProviders: Set<String>?
    /// Per-provider credentials that replace the provider's own for this client.
    public var upstreamCredentials: [String: UpstreamCredential]

    public init(id: String, allowedProviders: Set<String>?, upstreamCredentials: [String: UpstreamCredential]) {
        self.id = id
        self.allowedProviders = allowedProviders
        self.upstreamCredentials = upstreamCredentials
    }

    public static let anonymous = GatewayClient(id: "anonymous", allowedProviders: nil, upstreamCredentials: [:])

    public func mayUse(_ provider: String) -> Bool { allowedProviders?.contains(provider) ?? true }
}

public enum GatewayClientKey: RequestContextKey {
    public typealias Value = GatewayClient
}

/// A configured provider: its adapter and the gateway's own credential for it.
public struct ProviderBinding: Sendable {
    public let provider: any ExecutionProvider
    public let credential: UpstreamCredential

    public init(provider: any ExecutionProvider, credential: UpstreamCredential) {
        self.provider = provider
        self.credential = credential
    }

    public var name: String { provider.name }
}
