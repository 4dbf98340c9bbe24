public import GatewayCache
public import GatewayUpstream
import GatewayJSON
public import Logging

/// A provider whose reads go through a `ProviderFetcher`, whose statistics the app exports.
public protocol UpstreamBackedProvider: ExecutionProvider {
    var fetcher: ProviderFetcher { get }
}

extension UpstreamBackedProvider {
    /// One execution's detail record through the fetcher, fresh for as long as its status allows,
    /// with how it was obtained.
    func fetchDetail(
        _ request: ProviderRequest,
        call: UpstreamCallContext,
        decode: @escaping @Sendable (JSONValue) throws(ProviderError) -> ExecutionDetail
    ) async throws(ProviderError) -> ExecutionDetail {
        let fetched = try await fetcher.fetchDetail(request, call: call, decode: decode, status: \.execution.status)
        var detail = fetched.value
        detail.cache = fetched.cache
        return detail
    }
}

/// The provider types the gateway has adapters for (`type:` in config).
public enum ProviderType: String, Sendable, CaseIterable {
    case kaizen, kapso, b3os

    /// How the type sends its credential (docs/api.md, Providers).
    public var credentialPlacement: CredentialPlacement {
        switch self {
        case .kaizen, .b3os: .bearer
        case .kapso: .header(name: "X-API-Key")
        }
    }
}

/// What a provider may be called: the name prefixes execution ids (`<name>:<id>`) and appears in
/// `provider=`, so it is a short token that cannot hold `:`. The configuration validator and the
/// factory both apply this one rule.
public enum ProviderName {
    public static let maximumLength = 64
    public static let rule = "1 to \(maximumLength) letters, digits, \".\", \"_\" or \"-\""

    public static func isValid(_ name: String) -> Bool {
        (1...maximumLength).contains(name.unicodeScalars.count)
            && name.unicodeScalars.allSatisfy { scalar in
                ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                    || "._-".unicodeScalars.contains(scalar)
            }
    }
}

/// Why a provider could not be built from its settings. Messages name the setting and value
/// (never a credential: none is taken here).
public enum ProviderConfigurationError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidBaseURL(provider: String, baseURL: String)
    case invalidName(provider: String)
    case settingNotApplicable(provider: String, setting: String, type: String)

    public var description: String {
        switch self {
        case .invalidBaseURL(let provider, let baseURL):
            "provider '\(provider)': baseURL '\(baseURL)' is not an absolute http or https URL without user info, query or fragment"
        case .invalidName(let provider):
            "provider name '\(provider)' must be \(ProviderName.rule) (it prefixes execution ids)"
        case .settingNotApplicable(let provider, let setting, let type):
            "provider '\(provider)': '\(setting)' does not apply to type '\(type)'"
        }
    }
}

/// Builds adapters from plain settings; the config module maps its file onto these parameters.
public enum ProviderFactory {
    /// - Parameters:
    ///   - name: what clients see (`provider=`, the id prefix).
    ///   - type: which adapter.
    ///   - baseURL: e.g. `https://api.kapso.ai/platform/v1`; a trailing slash is ignored.
    ///   - workflowIDs: Kapso only; empty means discover them with `GET /workflows`.
    ///   - organizationID: B3OS only; sent as `X-Org-ID`.
    ///   - maxListAnswerBytes: Kaizen only; the largest list answer `fullList` reads (nil: the default).
    ///   - endpoint: the provider's upstream policy (timeouts, concurrency, pacing, retries, pauses).
    ///   - cache: the gateway's shared response cache.
    public static func make(
        name: String,
        type providerType: ProviderType,
        baseURL: String,
        workflowIDs: [String] = [],
        organizationID: String? = nil,
        maxListAnswerBytes: Int? = nil,
        endpoint: UpstreamEndpoint,
        cache: ResponseCache,
        cachePolicy: ProviderCachePolicy,
        logger: Logger = Logger(label: "gateway.providers")
    ) throws(ProviderConfigurationError) -> any UpstreamBackedProvider {
        guard ProviderName.isValid(name) else { throw .invalidName(provider: name) }
        guard isAcceptableBaseURL(baseURL) else { throw .invalidBaseURL(provider: name, baseURL: baseURL) }
        if !workflowIDs.isEmpty && providerType != .kapso {
            throw .settingNotApplicable(provider: name, setting: "workflowIds", type: providerType.rawValue)
        }
        if organizationID != nil && providerType != .b3os {
            throw .settingNotApplicable(provider: name, setting: "orgId", type: providerType.rawValue)
        }
        if maxListAnswerBytes != nil && providerType != .kaizen {
            throw .settingNotApplicable(provider: name, setting: "maxListAnswerBytes", type: providerType.rawValue)
        }
        let fetcher = ProviderFetcher(
            providerName: name, baseURL: baseURL, credentialPlacement: providerType.credentialPlacement,
            organizationID: providerType == .b3os ? organizationID : nil,
            endpoint: endpoint, cache: cache, cachePolicy: cachePolicy
        )
        var providerLogger = logger
        providerLogger[metadataKey: "provider"] = "\(name)"
        switch providerType {
        case .kaizen:
            return KaizenProvider(
                name: name, fetcher: fetcher,
                maxListAnswerBytes: maxListAnswerBytes ?? KaizenProvider.defaultMaxListAnswerBytes, logger: providerLogger)
        case .kapso:
            return KapsoProvider(name: name, fetcher: fetcher, workflowIDs: workflowIDs, logger: providerLogger)
        case .b3os:
            return B3OSProvider(name: name, fetcher: fetcher, logger: providerLogger)
        }
    }

    /// `http(s)://host[:port][/path]`: user info would put a credential in the URL, and a query
    /// or fragment would corrupt every path appended to it.
    static func isAcceptableBaseURL(_ text: String) -> Bool {
        let lowered = text.lowercased()
        let rest: Substring
        if lowered.hasPrefix("https://") {
            rest = text.dropFirst(8)
        } else if lowered.hasPrefix("http://") {
            rest = text.dropFirst(7)
        } else {
            return false
        }
        let authority = rest.prefix { $0 != "/" }
        guard !authority.isEmpty, !authority.contains("@") else { return false }
        return !text.contains("?") && !text.contains("#") && !text.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 0x20 || $0 == 0x7F } ?? false })
    }
}
