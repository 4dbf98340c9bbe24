extension OpenAPIDocument {
    /// The document a gateway serves, true to its configuration (neither `auth.mode` nor the
    /// providers change on reload): the configured provider names are the only `ProviderName`s
    /// (any other is `400`), and with `auth.mode: none` every operation admits callers without a
    /// key, so the document says so (`security: []`) instead of declaring a requirement the
    /// gateway does not enforce. Names are configuration tokens (`A-Z a-z 0-9 . _ -`), so quoting
    /// them makes them YAML strings whatever they look like (`true`, `1`).
    public static func served(requiringClientKey: Bool, providerNames: [String]) -> [UInt8] {
        var text = yaml
        let names = providerNames.map { "'\($0)'" }.joined(separator: ", ")
        text = text.replacing(providerNamePattern, with: providerNamePattern + "      enum: [\(names)]\n")
        if !requiringClientKey { text = text.replacing(clientKeyRequirement, with: noRequirement) }
        return Array(text.utf8)
    }

    /// Texts of `openapi/gateway.yaml` the served variants extend; a test keeps each there exactly once.
    static let clientKeyRequirement = "\nsecurity:\n  - bearerAuth: []\n  - apiKeyAuth: []\n"
    static let noRequirement = "\n# Served by a gateway with `auth.mode: none`: no client key is needed.\nsecurity: []\n"
    static let providerNamePattern = "\n    ProviderName:\n      type: string\n      description: A configured provider name (1 to 64 letters, digits, `.`, `_` or `-`); the prefix of execution ids.\n      pattern: '^[A-Za-z0-9._-]{1,64}$'\n"
}
